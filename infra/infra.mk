# Infrastructure targets (build, validate, deploy), included by the top-level Makefile.
#
# Code is built by cargo-lambda into target/lambda/<bin>/bootstrap, where the template's CodeUri
# points; `sam deploy` uploads those directories as they are (no `sam build`).

ARCH       ?= arm64
# Optional mapping file copied into every bundle as /var/task/mapping.toml
# (then deploy with MappingFile=/var/task/mapping.toml).
MAPPING    ?=
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

build: $(VENV)/.installed ## Build every function for Lambda into target/lambda/<fn>/ (ARCH=arm64|x86_64, MAPPING=file)
	@test -n "$(CARGO_LAMBDA_ARCH_$(ARCH))" || { echo "ARCH must be arm64 or x86_64, not '$(ARCH)'"; exit 1; }
	cargo lambda build --release $(CARGO_LAMBDA_ARCH_$(ARCH)) $(addprefix -p ,$(LAMBDA_FNS))
	@for fn in $(LAMBDA_FNS); do \
	  rm -f target/lambda/$$fn/mapping.toml; \
	  if [ -n "$(MAPPING)" ]; then cp "$(MAPPING)" target/lambda/$$fn/mapping.toml; fi; \
	done

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

deploy: validate build check-arch ## Deploy the stack with SAM (guided the first time; SAM_ENV=default)
	@command -v sam >/dev/null || { echo "sam not found: install the AWS SAM CLI (pip install aws-sam-cli)"; exit 1; }
	@if $(PY) -c 'import sys, tomllib; c = tomllib.load(open("$(SAM_CONFIG)", "rb")); sys.exit(0 if c.get("$(SAM_ENV)", {}).get("deploy", {}).get("parameters", {}).get("parameter_overrides") else 1)'; then \
	  echo "sam deploy --config-env $(SAM_ENV)"; \
	  sam deploy --template-file $(SAM_TEMPLATE) --config-file $(SAM_CONFIG) --config-env $(SAM_ENV); \
	else \
	  echo "No parameters saved for '$(SAM_ENV)' in infra/samconfig.toml yet: guided deploy (Architecture must be $(ARCH))"; \
	  sam deploy --guided --template-file $(SAM_TEMPLATE) --config-file $(SAM_CONFIG) --config-env $(SAM_ENV); \
	fi

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
