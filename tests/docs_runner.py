"""Run the samples of one documentation page (``python tests/docs_runner.py PAGE``), in a process of
its own: Django set up on the test settings (DJANGO_SETTINGS_MODULE), the test Redis. See
tests/docs_samples.py for the conventions. Prints one JSON line of counts; any failure raises,
naming the block."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import shlex
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import django

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import docs_samples  # noqa: E402
from tests.docs_samples import Block  # noqa: E402

# tempotask actions a page may run for real: they only read (or, migrate-keys, move nothing here).
READ_ONLY = {
    ("tempotask", "stats"),
    ("tempotask", "health"),
    ("tempotask", "crons", "list"),
    ("tempotask", "migrate-keys"),
}
EXTRAS = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])


class Page:
    def __init__(self, page: Path, project: Path) -> None:
        self.page = page
        self.project = project
        self.namespace: dict[str, Any] = {"__name__": "docs_sample"}
        self.counts = {"python": 0, "commands": 0, "commands_parsed": 0, "commands_run": 0, "skipped": 0}
        self._overrides: list[Any] = []

    # -- Python -----------------------------------------------------------------------------
    def python(self, block: Block) -> None:
        if block.setup:
            exec(compile(block.setup, f"{block.where} (setup)", "exec"), self.namespace)
        path = block.path
        if path == "settings.py":
            self.settings(block)
        elif path is not None:
            self.module(block, path)
        else:
            exec(compile(block.body, block.where, "exec"), self.namespace)
        self.counts["python"] += 1

    def settings(self, block: Block) -> None:
        from django.conf import settings
        from django.test import override_settings

        from tempotask_django.conf import validate

        values: dict[str, Any] = {"__name__": "docs_settings"}
        exec(compile(block.body, block.where, "exec"), values)
        changes: dict[str, Any] = {}
        if "TEMPOTASK" in values:
            problems = validate(values["TEMPOTASK"])
            assert not problems, f"{block.where}: TEMPOTASK is refused: {problems}"
            test = {key: settings.TEMPOTASK[key] for key in ("REDIS_URL", "KEY_PREFIX")}  # these stay
            changes["TEMPOTASK"] = {**values["TEMPOTASK"], **test}
        if "TASKS" in values:
            changes["TASKS"] = values["TASKS"]
        if changes:
            override = override_settings(**changes)
            override.enable()
            self._overrides.append(override)

    def module(self, block: Block, path: str) -> None:
        target = self.project / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.body)
        for package in Path(path).parents[:-1]:
            (self.project / package / "__init__.py").touch()
        name = path.removesuffix(".py").replace("/", ".")
        sys.modules.pop(name, None)  # a page may show one file twice
        importlib.invalidate_caches()
        module = importlib.import_module(name)
        self.namespace.update({key: value for key, value in vars(module).items() if not key.startswith("_")})

    # -- commands ---------------------------------------------------------------------------
    def commands(self, block: Block) -> None:
        if block.language == "yaml":
            import yaml

            documents = list(yaml.safe_load_all(block.body))
            command_lines = [args for document in documents for args in _yaml_commands(document)]
        else:
            command_lines = [args for line in block.body.splitlines() for args in self.line_commands(block, line)]
        for args in command_lines:
            self.manage(block, args)

    def line_commands(self, block: Block, line: str) -> list[list[str]]:
        text = line.strip()
        if block.language == "console":
            if not text.startswith("$ "):
                return []  # output
            text = text[2:]
        if block.language == "procfile":
            text = text.split(":", 1)[1].strip()
        if block.language == "ini":
            if not text.startswith("ExecStart="):
                return []
            text = text.removeprefix("ExecStart=")
        if not text or text.startswith("#"):
            return []
        words = shlex.split(text, comments=True)
        found: list[list[str]] = []
        for command in _split_on(words, "&&"):
            found += self.one_command(block, command)
        return found

    def one_command(self, block: Block, words: list[str]) -> list[list[str]]:
        """Check a command that is not manage.py's; return manage.py's arguments for the caller."""
        where = f"{block.where}: {' '.join(words)}"
        self.counts["commands"] += 1
        manage = [i for i, word in enumerate(words) if word == "manage.py" or word.endswith("/manage.py")]
        if manage:
            return [words[manage[0] + 1 :]]
        program = words[0]
        if program == "pip" and words[1] == "install":
            for requirement in words[2:]:
                extras = requirement.partition("[")[2].rstrip("]")
                assert requirement.startswith("tempotask-django"), where
                for extra in filter(None, extras.split(",")):
                    assert extra in EXTRAS, f"{where}: no extra {extra!r} in pyproject.toml"
            return []
        if program.startswith(("./", "scripts/", ".venv/bin/", "bench/")) or program in {"python", "tox"}:
            script = next((word for word in words if word.endswith(".py") or word.startswith(("./", "scripts/"))), None)
            if script is not None:
                assert (ROOT / script).exists(), f"{where}: {script} does not exist"
            if "-m" in words and program.rsplit("/", 1)[-1].startswith("python"):  # pytest's -m is a marker
                module = words[words.index("-m") + 1]
                assert importlib.util.find_spec(module), f"{where}: no module {module}"
                if module == "tempotask_django.chaos":
                    from tempotask_django.chaos.cli import parse_args

                    parse_args(words[words.index("-m") + 2 :])
            return []
        if block.language != "sh" and block.language != "bash":
            return []  # a transcript's or a configuration's other commands (curl, gunicorn...)
        raise AssertionError(f"{where}: a command the documentation test does not know; mark the block")

    def manage(self, block: Block, args: list[str]) -> None:
        from django.core.management import call_command, get_commands, load_command_class

        where = f"{block.where}: manage.py {' '.join(args)}"
        name, rest = args[0], args[1:]
        app = get_commands().get(name)
        assert app is not None, f"{where}: no such command"
        command = load_command_class(app, name)
        parser = command.create_parser("manage.py", name)
        parser.parse_args(rest)  # raises CommandError on an unknown option or a bad value
        self.counts["commands_parsed"] += 1
        words = tuple(word for word in args if not word.startswith("-"))
        if any(words[: len(prefix)] == prefix for prefix in READ_ONLY):
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):  # health exits 1 here
                call_command(*args, stdout=out, stderr=out)
            self.counts["commands_run"] += 1

    # -- the page ---------------------------------------------------------------------------
    def run(self) -> None:
        project = docs_samples.is_project(self.page)
        for block in docs_samples.blocks(self.page):
            if block.skip is not None:
                assert block.skip.strip(), f"{block.where}: a skip needs its reason"
                self.counts["skipped"] += 1
            elif block.language in docs_samples.RUN:
                if not project:  # tests/test_docs_testing.py runs those
                    self.python(block)
            elif block.language in docs_samples.COMMANDS:
                self.commands(block)
            else:
                assert block.language in docs_samples.NOT_CODE, f"{block.where}: unknown language {block.language!r}"
        for override in reversed(self._overrides):
            override.disable()


def _split_on(words: list[str], separator: str) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for word in words:
        if word == separator:
            parts.append([])
        else:
            parts[-1].append(word)
    return [part for part in parts if part]


def _yaml_commands(node: Any) -> list[list[str]]:
    """The manage.py commands of a YAML document: in command lists and in command strings."""
    found: list[list[str]] = []
    if isinstance(node, dict):
        for value in node.values():
            found += _yaml_commands(value)
    elif isinstance(node, list):
        if node and all(isinstance(item, str) for item in node) and "manage.py" in node:
            found.append(node[node.index("manage.py") + 1 :])
        else:
            for item in node:
                found += _yaml_commands(item)
    elif isinstance(node, str) and "manage.py" in node:
        words = shlex.split(node)
        found.append(words[words.index("manage.py") + 1 :])
    return found


def main(page: str) -> None:
    django.setup()
    if importlib.util.find_spec("django.tasks") is None:  # Django 5.2: the backport, as the pages say
        import django_tasks

        sys.modules["django.tasks"] = django_tasks
    with tempfile.TemporaryDirectory() as project:
        sys.path.insert(0, project)
        runner = Page(Path(page).resolve(), Path(project))
        runner.run()
    print(json.dumps(runner.counts))


if __name__ == "__main__":
    main(sys.argv[1])
