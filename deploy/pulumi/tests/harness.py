"""Runs Pulumi programs under Pulumi's mocks (no engine, no CLI, no cluster) and hands back
every resource registered, as Kubernetes would receive it (camelCase fields, secrets unwrapped),
plus helpers to run ``sluice check-config`` and ``kubernetes-validate`` on what was rendered."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

PROGRAM_DIR = Path(__file__).resolve().parent.parent
REPOSITORY = PROGRAM_DIR.parent.parent
if str(PROGRAM_DIR) not in sys.path:
    sys.path.insert(0, str(PROGRAM_DIR))

import pulumi  # noqa: E402
from pulumi.runtime import rpc  # noqa: E402

import sluice_pulumi  # noqa: E402


class Resource:
    """One registered resource: its type token, logical name, inputs and whether any input
    was a secret."""

    def __init__(self, typ: str, name: str, inputs: dict, secret_paths: list[str]) -> None:
        self.typ = typ
        self.name = name
        self.inputs = inputs
        self.secret_paths = secret_paths

    @property
    def kind(self) -> str:
        return self.inputs.get("kind", self.typ)

    def __repr__(self) -> str:
        return f"Resource({self.typ}, {self.name})"


def _plain(value: Any, path: str, secrets: list[str]) -> Any:
    """The wire form made plain: secrets unwrapped (their paths noted), whole floats back to
    ints (the mock's protobuf Struct carries every number as a double)."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            secrets.append(path)
            return _plain(value["value"], path, secrets)
        return {k: _plain(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class Recorder(pulumi.runtime.Mocks):
    """Mocks that record each registration. Kubernetes objects without a name get one as
    pulumi-kubernetes auto-names them: the logical name and a suffix."""

    def __init__(self) -> None:
        self.resources: list[Resource] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        secrets: list[str] = []
        inputs = _plain(dict(args.inputs), "", secrets)
        state = dict(args.inputs)
        if args.typ.startswith("kubernetes:"):
            metadata = dict(inputs.get("metadata") or {})
            metadata.setdefault("name", f"{args.name}-0a1b2c3d")
            inputs["metadata"] = metadata
            state["metadata"] = metadata
        self.resources.append(Resource(args.typ, args.name, inputs, secrets))
        return [f"{args.name}-id", state]

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


class Run:
    """What one program run registered."""

    def __init__(self, recorder: Recorder, outputs: dict) -> None:
        self.resources = recorder.resources
        self.outputs = outputs

    def of_kind(self, kind: str) -> list[Resource]:
        return [r for r in self.resources if r.kind == kind]

    def one(self, kind: str, name: Optional[str] = None) -> Resource:
        found = [r for r in self.of_kind(kind) if name is None or r.inputs["metadata"].get("name") == name]
        if len(found) != 1:
            raise AssertionError(f"expected one {kind} {name or ''}, found {[r.name for r in found]}")
        return found[0]


def run(program: Callable[[], Any], config: Optional[dict] = None, secret_keys: tuple = ()) -> Run:
    """Runs ``program`` under fresh mocks with the stack config ``config`` (keys without the
    ``sluice:`` prefix) in a fresh default catalog. ``program`` returns a dict of outputs to
    resolve, or None. Exceptions raised by the program, or inside an apply, propagate."""
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project="sluice", stack="test", preview=False)
    pulumi.runtime.set_all_config(
        {f"sluice:{k}": str(v) for k, v in (config or {}).items()}, [f"sluice:{k}" for k in secret_keys]
    )
    sluice_pulumi.apigateway.reset_default_catalog()
    resolved: dict = {}

    @pulumi.runtime.test
    def body():
        outputs = program() or {}
        return pulumi.Output.all(**outputs).apply(resolved.update)

    body()
    return Run(recorder, resolved)


PROGRAM_CONFIG = {
    "image": "registry.example.com/sluice:0.1.0",
    "keySecret": "test-secret-0123456789abcdef",
    "mlKey": "demo-key-123",
}


def run_program(config: Optional[dict] = None) -> Run:
    """Runs deploy/pulumi/__main__.py as ``pulumi up`` would, with the README's config."""
    settings = dict(PROGRAM_CONFIG) if config is None else config

    def program():
        scope = runpy.run_path(str(PROGRAM_DIR / "__main__.py"), run_name="__main__")
        return {"config": scope["deployment"].config_text}

    return run(program, settings, secret_keys=("keySecret", "mlKey", "adminTokens"))


def sluice_binary() -> Path:
    """``$SLUICE_BIN``, else the debug build."""
    path = Path(os.environ.get("SLUICE_BIN") or REPOSITORY / ".build/debug/sluice")
    if not os.access(path, os.X_OK):
        raise AssertionError(f"no sluice binary at {path}: build it (swift build) or set SLUICE_BIN")
    return path


def check_config(text: str) -> subprocess.CompletedProcess:
    """``sluice check-config`` on ``text`` written to a file."""
    with tempfile.TemporaryDirectory() as scratch:
        file = Path(scratch) / "sluice.yaml"
        file.write_text(text)
        return subprocess.run(
            [str(sluice_binary()), "check-config", str(file)],
            capture_output=True, text=True, timeout=30,
            env={**os.environ, "SLUICE_KEY_SECRET": "test-secret-0123456789abcdef"},
        )


def kubernetes_validate(objects: list[dict]) -> subprocess.CompletedProcess:
    """The test venv's ``kubernetes-validate --strict`` on ``objects`` as one YAML stream."""
    import yaml

    validator = Path(sys.executable).parent / "kubernetes-validate"
    if not os.access(validator, os.X_OK):
        raise AssertionError(f"{validator} is missing: run ./scripts/test, which installs the suite's Python tools")
    with tempfile.TemporaryDirectory() as scratch:
        file = Path(scratch) / "manifests.yaml"
        file.write_text(yaml.safe_dump_all(objects, sort_keys=False))
        return subprocess.run([str(validator), "--strict", str(file)], capture_output=True, text=True, timeout=60)
