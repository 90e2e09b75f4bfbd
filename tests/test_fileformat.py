"""The model file: construct schema round trip, and the board reader agreeing with it."""

from __future__ import annotations

import json

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from converter import schema, writer
from converter.inspect_model import describe
from host_sim import run
from host_sim.probes import describe_script
from tests.graphs import graphs

DEVICE_FIELDS = ("format_version", "file_bytes", "arena_bytes", "scratch_bytes", "data_bytes",
                 "sections")


def _comparable(d: dict) -> dict:
    """The host description in the device probe's shape."""
    out = {k: d[k] for k in DEVICE_FIELDS}
    out["inputs"] = [t["index"] for t in d["inputs"]]
    out["outputs"] = [t["index"] for t in d["outputs"]]
    out["tensors"] = [{k: v for k, v in t.items() if k != "scale"} for t in d["tensors"]]
    out["operators"] = d["operators"]
    out["metadata"] = json.dumps(d["metadata"], sort_keys=True)
    return out


@given(graphs())
def test_construct_round_trip(g):
    b = writer.serialize(g)
    f = schema.parse_file(b)
    assert schema.build_file(f) == b
    # every section's contents round-trip through its own struct too
    for s in f.sections:
        sub = schema.SECTION_STRUCTS.get(s.kind)
        if sub is not None:
            assert sub.build(sub.parse(s.data)) == s.data
    d = describe(b)
    assert d["file_bytes"] == len(b)
    assert [t["shape"] for t in d["tensors"]] == [list(t.shape) for t in g.tensors]
    assert [o["params"] for o in d["operators"]] == [op.params for op in g.ops]


@settings(max_examples=3, phases=[Phase.explicit, Phase.generate])
@given(st.lists(graphs(), min_size=8, max_size=8))
def test_board_reader_agrees_with_schema(interpreter, gs):
    files = {f"m{i}.trt": writer.serialize(g) for i, g in enumerate(gs)}
    out = run(describe_script(sorted(files)), interpreter, files=files).stdout
    out = out.rstrip("\n").split("\n")
    assert len(out) == len(files)
    for name, line in zip(sorted(files), out):
        device = json.loads(line)
        host = _comparable(describe(files[name]))
        device["metadata"] = json.dumps(json.loads(device["metadata"]), sort_keys=True)
        assert device == host, name
