"""The protobuf contract: generated code matches proto/, every element is documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]


def test_generated_code_has_not_drifted() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "proto/generate.py"), "--check"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr


def test_every_proto_element_has_a_comment(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "proto"))
    try:
        from generate import include_dirs
    finally:
        sys.path.pop(0)

    out = tmp_path / "set.pb"
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto"))
    rc = protoc.main(
        [
            "protoc",
            *(f"-I{d}" for d in include_dirs(tmp_path / "inc")),
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *protos,
        ]
    )
    assert rc == 0
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    missing = []
    for f in fds.file:
        commented = {
            tuple(loc.path) for loc in f.source_code_info.location if loc.leading_comments.strip()
        }
        # Paths: 4 = message_type, 2 = field, 5 = enum_type, 2 = value, 6 = service, 2 = method.
        for i, m in enumerate(f.message_type):
            if (4, i) not in commented:
                missing.append(f"{f.name}: message {m.name}")
            missing += [
                f"{f.name}: {m.name}.{fl.name}"
                for j, fl in enumerate(m.field)
                if (4, i, 2, j) not in commented
            ]
        for i, e in enumerate(f.enum_type):
            if (5, i) not in commented:
                missing.append(f"{f.name}: enum {e.name}")
            missing += [
                f"{f.name}: {v.name}"
                for j, v in enumerate(e.value)
                if (5, i, 2, j) not in commented
            ]
            assert e.value[0].name.endswith("_UNSPECIFIED"), e.name
        for i, s in enumerate(f.service):
            if (6, i) not in commented:
                missing.append(f"{f.name}: service {s.name}")
            missing += [
                f"{f.name}: rpc {m.name}"
                for j, m in enumerate(s.method)
                if (6, i, 2, j) not in commented
            ]
    assert not missing, "undocumented proto elements:\n" + "\n".join(missing)
