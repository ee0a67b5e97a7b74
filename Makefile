# Two commands on a fresh machine: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench messages clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/digestbot demo --workdir demo

# The browser test needs Debian's chromium; install it when we can (root), else that test skips.
test: $(BIN)/.installed
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null) || \
	  echo "chromium not installed: the preview browser test will be skipped"; }
	$(BIN)/python -m pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy bot digests
	$(BIN)/lint-imports

bench: $(BIN)/.installed
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/publish.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/memory.py

# The bot's message catalogs (bot/locale/*/LC_MESSAGES/digestbot.po) brought up to date with the
# source: new messages added (empty in zh_CN until translated), gone ones dropped. tests/test_i18n.py
# fails while a zh_CN message is untranslated or fuzzy. The template is scratch: not kept in git.
POT := bot/locale/digestbot.pot
messages: $(BIN)/.installed
	$(BIN)/pybabel -q extract -F babel.cfg --add-comments=TRANSLATORS: --add-location=file --sort-by-file \
	  --project=hardcore-digest --copyright-holder=hardcore-digest -o $(POT) .
	$(BIN)/pybabel -q update -i $(POT) -d bot/locale -D digestbot --ignore-obsolete
	$(BIN)/python tools/english_catalog.py
	rm -f $(POT)

clean:
	rm -rf $(VENV) demo .pytest_cache test-artifacts
