"""Expands the SAM template into plain CloudFormation JSON, offline.

cfn-lint 1.x no longer applies the SAM transform, so mistakes inside SAM event sources would go
unnoticed; the expanded template is what CloudFormation actually receives, and what cfn-lint and
the template tests check.

Usage: transform.py [TEMPLATE] [OUTPUT]   (defaults: infra/template.yaml, target/sam/template.json;
OUTPUT "-" writes the JSON to stdout)
"""

import json
import os
import sys
from pathlib import Path

# The translator asks boto3 for a region and a partition only; no call reaches AWS.
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-central-1")

import boto3  # noqa: E402
from cfnlint.decode import cfn_yaml  # noqa: E402
from samtranslator.parser.parser import Parser  # noqa: E402
from samtranslator.translator.translator import Translator  # noqa: E402
from samtranslator.model.exceptions import InvalidDocumentException  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def stand_in_for_uploaded_code(template: dict) -> None:
    """Points local CodeUri paths at a placeholder S3 object, as `sam deploy` would after uploading."""
    for name, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        properties = resource.get("Properties", {})
        code_uri = properties.get("CodeUri")
        if isinstance(code_uri, str) and not code_uri.startswith("s3://"):
            properties["CodeUri"] = f"s3://placeholder-artifacts/{name}.zip"


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else ROOT / "infra" / "template.yaml"
    output = Path(argv[2]) if len(argv) > 2 else ROOT / "target" / "sam" / "template.json"
    template = cfn_yaml.load(str(source))
    stand_in_for_uploaded_code(template)
    session = boto3.session.Session(region_name=os.environ["AWS_DEFAULT_REGION"])
    # No managed policy is named in the template, so the map that would need IAM stays empty.
    translator = Translator(managed_policy_map={}, sam_parser=Parser(), boto_session=session)
    try:
        translated = translator.translate(
            sam_template=template, parameter_values={}, get_managed_policy_map=lambda: {}
        )
    except InvalidDocumentException as error:
        for cause in error.causes:
            print(f"{source}: {cause.message}", file=sys.stderr)
        return 1
    text = json.dumps(translated, indent=2, ensure_ascii=False) + "\n"
    if str(output) == "-":
        sys.stdout.write(text)
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(f"{source} -> {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
