# Infrastructure targets (build, validate, deploy), included by the top-level Makefile.
#
# Code is built by cargo-lambda into target/lambda/<bin>/bootstrap, where the template's CodeUri
# points; `sam deploy` uploads those directories as they are (no `sam build`).

ARCH       ?= arm64
# Optional mapping file copied into every bundle as /var/task/mapping.toml. The choice is kept in
# MAPPING_RECORD: a later `make build` or `make deploy` without MAPPING bundles the same file again
# (read afresh, so edits count) instead of silently dropping it; MAPPING=none goes back to the
# built-in mapping. A function whose MappingFile names a missing file fails every invocation.
MAPPING    ?=
MAPPING_RECORD := target/lambda/.mapping
BUNDLED_MAPPING := $(if $(filter none,$(MAPPING)),,$(if $(MAPPING),$(abspath $(MAPPING)),$(shell cat $(MAPPING_RECORD) 2>/dev/null)))
SAM_ENV    ?= default
LAMBDA_FNS  = $(notdir $(wildcard functions/*))
SAM_TEMPLATE := $(CURDIR)/infra/template.yaml
SAM_CONFIG   := $(CURDIR)/infra/samconfig.toml
CFN_JSON     := target/sam/template.json

# cargo-lambda spells the architectures its own way; the ELF machine ids check what was built.
CARGO_LAMBDA_ARCH_arm64  := --arm64
CARGO_LAMBDA_ARCH_x86_64 := --x86-64
ELF_MACHINE_arm64        := 183
ELF_MACHINE_x86_64       := 62

.PHONY: build-check check-arch

build: $(VENV)/.installed ## Build every function for Lambda into target/lambda/<fn>/ (ARCH=arm64|x86_64; MAPPING=file, kept by later builds until MAPPING=none)
	@test -n "$(CARGO_LAMBDA_ARCH_$(ARCH))" || { echo "ARCH must be arm64 or x86_64, not '$(ARCH)'"; exit 1; }
	@test -z "$(BUNDLED_MAPPING)" || test -f "$(BUNDLED_MAPPING)" || { \
	  echo "mapping file $(BUNDLED_MAPPING) not found$(if $(MAPPING),, (kept from an earlier MAPPING=)): pass MAPPING=file, or MAPPING=none for the built-in mapping"; exit 1; }
	cargo lambda build --release $(CARGO_LAMBDA_ARCH_$(ARCH)) $(addprefix -p ,$(LAMBDA_FNS))
	@for fn in $(LAMBDA_FNS); do \
	  rm -f target/lambda/$$fn/mapping.toml; \
	  if [ -n "$(BUNDLED_MAPPING)" ]; then cp "$(BUNDLED_MAPPING)" target/lambda/$$fn/mapping.toml; fi; \
	done
	@if [ -n "$(BUNDLED_MAPPING)" ]; then \
	  echo "$(BUNDLED_MAPPING)" > $(MAPPING_RECORD); \
	  echo "bundled $(BUNDLED_MAPPING) as /var/task/mapping.toml$(if $(MAPPING),, (kept; MAPPING=none drops it))"; \
	else rm -f $(MAPPING_RECORD); fi

build-check: $(VENV)/.installed ## Quick proof that every function builds for Lambda on x86_64 (CI builds arm64: .ci/run)
	cargo lambda build --release --x86-64 $(addprefix -p ,$(LAMBDA_FNS))

validate: $(VENV)/.installed ## Expand the SAM template offline and cfn-lint it before and after
	$(PY) infra/transform.py infra/template.yaml $(CFN_JSON)
	$(VENV)/bin/cfn-lint infra/template.yaml $(CFN_JSON)

# Refuses bootstraps of the wrong architecture (e.g. left over from `make build ARCH=x86_64`).
check-arch:
	@for fn in $(LAMBDA_FNS); do \
	  f=target/lambda/$$fn/bootstrap; \
	  test -f $$f || { echo "$$f missing: run make build"; exit 1; }; \
	  m=$$(od -An -tu2 -j18 -N2 $$f | tr -d ' '); \
	  test "$$m" = "$(ELF_MACHINE_$(ARCH))" || { echo "$$f is not built for $(ARCH): run make build ARCH=$(ARCH)"; exit 1; }; \
	done

# sam deploy takes --parameter-overrides instead of the saved parameter_overrides, not on top of
# them (aws/aws-sam-cli#2380), so the saved ones are passed first and these after them (the last
# value of a key wins): Architecture from ARCH, MappingFile from what `build` bundled.
define SAM_DEPLOY_PY
import os, shlex, sys, tomllib
config, env, template, arch, mapping_file, mapping_arg = sys.argv[1:]
saved = tomllib.load(open(config, "rb")).get(env, {}).get("deploy", {}).get("parameters", {}).get("parameter_overrides") or []
saved = [saved] if isinstance(saved, str) else list(saved)
saved_values = dict(p.split("=", 1) for s in saved for p in shlex.split(s) if "=" in p)
if not mapping_file and saved_values.get("MappingFile") and mapping_arg != "none":
    sys.exit(f"infra/samconfig.toml [{env}] saves MappingFile={saved_values['MappingFile']} but no mapping file "
             "is bundled, so every function would fail at start: make deploy MAPPING=path/to/mapping.toml "
             "(later builds keep it), or MAPPING=none to deploy the built-in mapping")
ours = {"Architecture": arch, "MappingFile": mapping_file}
for key, value in ours.items():
    if saved_values.get(key, value) != value:
        print(f"{key}={value!r} instead of the saved {saved_values[key]!r} (update infra/samconfig.toml to match)")
cmd = ["sam", "deploy", "--template-file", template, "--config-file", config, "--config-env", env]
if not saved:
    print(f"No parameters saved for '{env}' in infra/samconfig.toml yet: guided deploy "
          f"(keep Architecture={arch} and MappingFile={mapping_file!r}: they match the build)")
    cmd.append("--guided")
print(f"sam deploy --config-env {env} (Architecture={arch}, MappingFile={mapping_file!r})")
sys.stdout.flush()
os.execvp("sam", cmd + ["--parameter-overrides", *saved, *(f'{k}="{v}"' for k, v in ours.items())])
endef
export SAM_DEPLOY_PY

deploy: validate build check-arch ## Deploy the stack with SAM (guided the first time; SAM_ENV=default; ARCH, MAPPING as for build)
	@command -v sam >/dev/null || { echo "sam not found: install the AWS SAM CLI (pip install aws-sam-cli)"; exit 1; }
	@$(PY) -c "$$SAM_DEPLOY_PY" $(SAM_CONFIG) $(SAM_ENV) $(SAM_TEMPLATE) $(ARCH) \
	  "$(if $(BUNDLED_MAPPING),/var/task/mapping.toml)" "$(MAPPING)"

# Talks to `cargo lambda watch` (run it in another terminal). EVENT defaults to the function's
# example below, else events/<fn>.json.
INVOKE_EVENT_stream-filter := events/dynamodb-insert.json
INVOKE_EVENT_exporter      := events/sqs-good-batch.json
INVOKE_EVENT_full-sync     := events/full-sync.json

invoke-%: ## Invoke a function under `cargo lambda watch`: make invoke-exporter [EVENT=events/x.json]
	@event="$(or $(EVENT),$(INVOKE_EVENT_$*),events/$*.json)"; \
	test -f "$$event" || { echo "$$event not found; pass EVENT=path"; exit 1; }; \
	echo "cargo lambda invoke $* --data-file $$event"; \
	cargo lambda invoke $* --data-file "$$event"
