"""Operators' formats (issue 11): Slurm and Kubernetes/Kueue import, export, round trips."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import hostlist
import pytest
import yaml
from typer.testing import CliRunner

import placer
from placer.cli import app
from placer.errors import InstanceError, PlacementError
from placer.formats import export_kubernetes, export_slurm, import_kubernetes, import_slurm
from placer.formats.kubernetes import level_labels
from placer.formats.slurm import parse_slurm_conf, parse_topology_conf

D = Path(__file__).parent / "data" / "formats"
CIRCE = str(D / "circe_topology.conf")


def _solve(doc: dict):
    inst = placer.load_instance(doc)
    assert inst.warnings == []
    res = placer.solve(inst, solver="cpsat", time_limit=None, work_limit=5, seed=0)
    assert res.status.has_placement
    assert placer.check(inst, res.placement) == []
    return inst, res.placement


def _hosts(gpus: list[str]) -> set[str]:
    return {g.rsplit("/", 2)[-2] for g in gpus}


def _round_trip_slurm(inst, pl) -> dict:
    out = export_slurm(inst, pl)
    by_name = {j["name"]: j for j in out["jobs"]}
    placed = [pj for pj in pl.jobs if pj.gpus]
    assert placed, "the fixture must place something"
    for pj in placed:
        j = by_name[pj.name]
        assert set(hostlist.expand_hostlist(j["nodelist"])) == _hosts(pj.gpus)
        assert j["nodes"] == len(_hosts(pj.gpus))
        assert f"--nodelist={j['nodelist']}" in j["sbatch"]
        assert f"--gpus-per-node={j['gpus_per_node']}" in j["sbatch"]
        assert f"--ntasks-per-node={j['gpus_per_node']}" in j["sbatch"]
        # the rank order covers every rank once, node by node
        ranks = []
        for r in j["rank_order"]:
            for part in r["ranks"].split(","):
                a, _, b = part.partition("-")
                ranks += range(int(a), int(b or a) + 1)
        assert sorted(ranks) == list(range(len(pj.gpus)))
    return out


# ---------------------------------------------------------------- Slurm topology.conf


def test_real_circe_topology_defects_are_warned_with_file_line_and_resolved():
    doc, warns = import_slurm(
        [(CIRCE, "circe")], nodes=D / "circe_slurm.conf", jobs=D / "jobs.yaml"
    )
    text = [str(w) for w in warns]
    assert any(w.line == 1 and "n019" in w.what and "circe-n019" in w.what for w in warns)
    two = [w for w in warns if "circe-n051" in w.what]
    assert len(two) == 1 and two[0].line == 5 and "s2" in two[0].what and "first" in two[0].what
    assert any("circe-n[059,081-098]" in t and "no switch" in t for t in text)
    assert any("default table" in t for t in text)
    inst = placer.load_instance(doc)
    assert inst.topology.levels == ["site", "leaf", "node"]
    nodes = {inst.index.node_path(n) for n in range(inst.index.n_domains(2))}
    assert "circe/s0/circe-n019" in nodes and "circe/s2/circe-n051" in nodes
    assert "circe/s4/circe-n051" not in nodes and len(nodes) == 79
    assert inst.index.n_gpus == 79 * 16
    assert any(
        d.get("gpu_type") == "V100" for d in doc["topology"]["sites"][0]["domains"][0]["domains"]
    )


def test_circe_round_trip_import_solve_export_with_lease_reservation():
    doc, _ = import_slurm([(CIRCE, "circe")], nodes=D / "circe_slurm.conf", jobs=D / "jobs.yaml")
    inst, pl = _solve(doc)
    out = _round_trip_slurm(inst, pl)
    for lease in out["leases"]:
        grant = next(g for g in pl.leases if g.offer == lease["offer"])
        want = {b.rsplit("/", 1)[-1] for b in grant.blocks}
        # every node of every leased switch, and nothing else
        switch_of = {
            n["name"]: d["name"]
            for d in doc["topology"]["sites"][0]["domains"]
            for n in d["domains"]
        }
        got = set(hostlist.expand_hostlist(lease["nodelist"]))
        assert got == {n for n, s in switch_of.items() if s in want}
        assert lease["reservation"].startswith("scontrol create reservation ")
        assert f"Nodes={lease['nodelist']}" in lease["reservation"]


def test_circe_without_slurm_conf_fixes_the_prefix_by_the_other_names():
    doc, warns = import_slurm([(CIRCE, "circe")], gpus_per_node=8, gpu_type="H100")
    assert any("lacks the prefix 'circe-'" in w.what and w.line == 1 for w in warns)
    assert any("8 x H100" in w.what for w in warns)
    assert placer.load_instance(doc).index.n_gpus == 79 * 8


def test_held_out_like_tree_node_under_two_switches_typed_gres_link_speed():
    doc, warns = import_slurm(
        [(D / "tree_topology.conf", "dc1")],
        nodes=D / "tree_slurm.conf",
        jobs=D / "tree_jobs.yaml",
    )
    dup = [w for w in warns if "gpu012" in w.what]
    assert len(dup) == 1 and dup[0].line == 8 and dup[0].file.endswith("tree_topology.conf")
    assert "leaf2" in dup[0].what and "keeps it" in dup[0].what
    assert any("leaf9" in w.what and w.line == 4 for w in warns)  # undefined switch
    assert any("orphan" in w.what and w.line == 9 for w in warns)  # not under the top switch
    inst, pl = _solve(doc)
    assert inst.topology.levels == ["site", "tier3", "tier2", "leaf", "node"]
    fab = inst.topology.fabric
    assert fab["tier3"].bandwidth_GBps == 25.0  # LinkSpeed=200 Gb/s (2:1 spine)
    assert fab["leaf"].bandwidth_GBps == 50.0
    types = {
        n["gpu_type"]
        for tier3 in doc["topology"]["sites"][0]["domains"]
        for tier2 in tier3["domains"]
        for leaf in tier2["domains"]
        for n in leaf["domains"]
    }
    assert types == {"H100", "H200"}  # gpu:h100:8 and gpu:nvidia_h200:8(S:0-1)
    _round_trip_slurm(inst, pl)
    by = {j.name: j for j in pl.jobs}
    assert by["big"].gpus and by["small"].gpus


def test_type_map_overrides_the_default_mapping():
    doc, _ = import_slurm(
        [(D / "tree_topology.conf", "dc1")],
        nodes=D / "tree_slurm.conf",
        type_map=["h100=H100-SXM", "nvidia_h200=H200-NVL"],
    )
    text = json.dumps(doc)
    assert '"H100-SXM"' in text and '"H200-NVL"' in text


def test_block_topology_levels_and_segment_in_sbatch():
    doc, _ = import_slurm(
        [(D / "block_topology.conf", "nvl")],
        nodes=D / "block_slurm.conf",
        jobs=D / "block_jobs.yaml",
    )
    inst, pl = _solve(doc)
    assert inst.topology.levels == ["site", "blocks36", "block", "node"]
    _round_trip_slurm(inst, pl)
    # a placement with 8 trays in each of two blocks gets --segment=8
    gpus = [f"nvl/b1-b2/b1/nvl{n:03d}/gpu{k}" for n in range(1, 9) for k in range(4)]
    gpus += [f"nvl/b1-b2/b2/nvl{n:03d}/gpu{k}" for n in range(19, 27) for k in range(4)]
    manual = {"jobs": [{"name": "wide", "units": 16, "gpus": gpus}], "leases": []}
    j = export_slurm(inst, manual)["jobs"][0]
    assert j["segment"] == 8 and "--segment=8" in j["sbatch"]
    assert set(hostlist.expand_hostlist(j["nodelist"])) == _hosts(gpus)
    assert j["nodelist"] == "nvl[001-008,019-026]"


def test_topology_yaml_named_topologies_and_cluster_default():
    doc, _ = import_slurm([(D / "topology.yaml", "y")])
    assert doc["topology"]["levels"] == ["site", "leaf", "node"]  # cluster_default: the tree
    assert [d["name"] for d in doc["topology"]["sites"][0]["domains"]] == ["s1", "s2"]
    doc, _ = import_slurm([(D / "topology.yaml", "y")], topology_name="topo-block")
    assert doc["topology"]["levels"] == ["site", "blocks4", "block", "node"]
    placer.load_instance(doc)
    doc, _ = import_slurm(
        [(D / "topology.yaml", "y")], topology_name="topo-flat", nodes=D / "tree_slurm.conf"
    )
    assert doc["topology"]["levels"] == ["site", "node"]
    assert placer.load_instance(doc).index.n_gpus == 18 * 8
    with pytest.raises(InstanceError, match="no topology named 'nope'"):
        import_slurm([(D / "topology.yaml", "y")], topology_name="nope")


def test_several_sites_with_wan(tmp_path):
    wan = tmp_path / "wan.yaml"
    wan.write_text("wan:\n  - {between: [a, b], latency_us: 500, bandwidth_GBps: 100}\n")
    doc, _ = import_slurm(
        [(D / "tree_topology.conf", "a"), (D / "tree_topology.conf", "b")],
        nodes=D / "tree_slurm.conf",
        wan=wan,
    )
    inst = placer.load_instance(doc)
    assert [s.name for s in inst.topology.sites] == ["a", "b"]
    assert inst.topology.wan[0].latency_us == 500
    with pytest.raises(InstanceError, match="given twice"):
        import_slurm([(CIRCE, "x"), (CIRCE, "x")])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("SwitchName=s0 Nodes=n[1-\n", "topology.conf:1: bad hostlist"),
        ("SwitchName=s0 Nodes=a1\nBlockName=b1 Nodes=a2\n", "mixes"),
        ("SwitchName=a Switches=b\nSwitchName=b Switches=a\n", "cycle"),
        ("Nodes=a1\n", "topology.conf:1: expected SwitchName="),
        ("BlockName=b1 Nodes=a[1-2]\nBlockSizes=4,2\n", "topology.conf:2: BlockSizes"),
    ],
)
def test_unresolvable_topologies_are_refused_with_their_place(tmp_path, text, match):
    p = tmp_path / "topology.conf"
    p.write_text(text)
    with pytest.raises(InstanceError) as e:
        import_slurm([(p, "s")])
    assert match in str(e.value)


def test_slurm_conf_gres_parsing():
    nodes, warns = parse_slurm_conf(
        "NodeName=DEFAULT Gres=gpu:a100:4\nNodeName=a[1-2]\n"
        "NodeName=b1 Gres=gpu:h100:8,nvme:2\nNodeName=c1 Gres=gpu:2,gpu:l40s:6\n",
        "slurm.conf",
    )
    assert (nodes["a2"].gpus, nodes["a2"].raw_type) == (4, "a100")
    assert (nodes["b1"].gpus, nodes["b1"].raw_type, nodes["b1"].line) == (8, "h100", 3)
    assert nodes["c1"].raw_type == "l40s" and warns and warns[0].line == 4
    assert (
        parse_topology_conf("SwitchName=s Nodes=x[1-2] LinkSpeed=400\n").switches[0].link_speed
        == 400
    )


# ---------------------------------------------------------------- Kubernetes / Kueue


def _k8s(**kw):
    return import_kubernetes(
        D / "kueue_topology.yaml", [D / "k8s_nodes.json"], jobs=D / "k8s_jobs.yaml", **kw
    )


def test_kubernetes_import_levels_unavailable_and_types():
    doc, warns = _k8s(sites=["east"])
    inst = placer.load_instance(doc)
    assert inst.topology.levels == ["site", "block", "rack", "node"]
    assert sorted(inst.topology.unavailable) == [
        "east/block-0/rack-0-1/gpu-node-05",
        "east/block-1/rack-1-0/gpu-node-09",
    ]
    text = " ".join(str(w) for w in warns)
    assert "NotReady" in text and "unschedulable" in text and "cpu-node-00" in text
    assert inst.index.n_gpus == 16 * 8
    assert '"gpu_type": "H100"' in json.dumps(doc)  # NVIDIA-H100-80GB-HBM3


def test_kubernetes_sites_from_a_label():
    doc, _ = _k8s(site_label="topology.kubernetes.io/zone")
    assert [s["name"] for s in doc["topology"]["sites"]] == ["us-east1-b", "us-east1-c"]
    placer.load_instance(doc)


def test_kubernetes_round_trip_and_schema_validation():
    kv = pytest.importorskip("kubernetes_validate")
    doc, _ = _k8s(sites=["east"])
    inst, pl = _solve(doc)
    unavailable = {"gpu-node-05", "gpu-node-09"}
    out = export_kubernetes(inst, pl, level_labels(D / "kueue_topology.yaml"))
    placed = {pj.name: pj for pj in pl.jobs if pj.gpus}
    assert {j["name"] for j in out["jobs"]} == set(placed)
    for j in out["jobs"]:
        m = j["manifest"]
        kv.validate(m, "1.30", strict=True)
        terms = m["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
        hosts = set(terms[0]["matchExpressions"][0]["values"])
        assert hosts == _hosts(placed[j["name"]].gpus) and not hosts & unavailable
        assert m["spec"]["parallelism"] == len(hosts)
        # one site: no site label, no note (the site notes are for several sites)
        assert "placer/site" not in m["metadata"]["labels"] and "note" not in j
    train = next(j for j in out["jobs"] if j["name"] == "train-a")
    ann = train["manifest"]["spec"]["template"]["metadata"]["annotations"]
    # scope dp: rack puts the job in one rack, which Kueue's annotation expresses
    assert ann == {"kueue.x-k8s.io/podset-required-topology": "cloud.provider.com/topology-rack"}
    # the validator does fail on a broken manifest
    bad = json.loads(json.dumps(train["manifest"]))
    bad["spec"]["parallelism"] = "four"
    with pytest.raises(kv.ValidationError):
        kv.validate(bad, "1.30", strict=True)


def test_export_refuses_an_infeasible_placement():
    doc, _ = _k8s(sites=["east"])
    inst = placer.load_instance(doc)
    gpus = [f"east/block-0/rack-0-1/gpu-node-05/gpu{k}" for k in range(8)]  # NotReady node
    bad = {"jobs": [{"name": "serve-b", "units": 1, "gpus": gpus}], "leases": []}
    with pytest.raises(PlacementError):
        export_slurm(inst, bad)


# ---------------------------------------------------------------- CLI


def test_cli_import_solve_export_slurm(tmp_path):
    r = CliRunner()
    inst, pl = tmp_path / "circe.yaml", tmp_path / "circe.json"
    res = r.invoke(
        app,
        [
            "import",
            "slurm",
            "--topology",
            CIRCE,
            "--site",
            "circe",
            "--nodes",
            str(D / "circe_slurm.conf"),
            "--jobs",
            str(D / "jobs.yaml"),
            "--type-map",
            "v100=V100",
            "-o",
            str(inst),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "circe-n051" in res.output and "wrote" in res.output
    res = r.invoke(app, ["solve", str(inst), "-q", "--work-limit", "5", "-t", "0", "-o", str(pl)])
    assert res.exit_code == 0, res.output
    res = r.invoke(app, ["export", "slurm", str(inst), str(pl), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    placement = json.loads(pl.read_text())
    for j, pj in zip(out["jobs"], placement["jobs"], strict=True):
        if pj["gpus"]:
            assert set(hostlist.expand_hostlist(j["nodelist"])) == _hosts(pj["gpus"])
    res = r.invoke(app, ["export", "slurm", str(inst), str(pl)])
    assert res.exit_code == 0 and "sbatch --job-name=" in res.stdout


def test_cli_kubernetes_and_bad_input(tmp_path):
    r = CliRunner()
    inst, pl = tmp_path / "k.yaml", tmp_path / "k.json"
    res = r.invoke(
        app,
        [
            "import",
            "kubernetes",
            "--topology",
            str(D / "kueue_topology.yaml"),
            "--nodes",
            str(D / "k8s_nodes.json"),
            "--site",
            "east",
            "--jobs",
            str(D / "k8s_jobs.yaml"),
            "-o",
            str(inst),
        ],
    )
    assert res.exit_code == 0, res.output
    assert (
        r.invoke(
            app, ["solve", str(inst), "-q", "--work-limit", "5", "-t", "0", "-o", str(pl)]
        ).exit_code
        == 0
    )
    res = r.invoke(
        app,
        ["export", "kubernetes", str(inst), str(pl), "--topology", str(D / "kueue_topology.yaml")],
    )
    assert res.exit_code == 0, res.output
    docs = [d for d in yaml.safe_load_all(res.stdout) if d]
    assert docs and all(d["kind"] == "Job" for d in docs)
    bad = tmp_path / "bad.conf"
    bad.write_text("SwitchName=s0 Nodes=n[1-\n")
    res = r.invoke(app, ["import", "slurm", "--topology", str(bad), "-o", str(tmp_path / "x")])
    assert res.exit_code == 2 and "bad.conf:1" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- issue 18 part 7 (fuzzer)


@pytest.mark.parametrize("which", ["--topology", "--nodes", "--jobs"])
def test_a_file_that_is_not_utf8_is_one_located_error_and_exit_2(tmp_path, which):
    files = {
        "--topology": tmp_path / "topology.conf",
        "--nodes": tmp_path / "slurm.conf",
        "--jobs": tmp_path / "jobs.yaml",
    }
    files["--topology"].write_text("SwitchName=s0 Nodes=n[1-2]\n")
    files["--nodes"].write_text("NodeName=n[1-2] Gres=gpu:h100:8\n")
    files["--jobs"].write_text("jobs: []\n")
    files[which].write_bytes(b"# caf\xe9 r\xe9seau\n" + files[which].read_bytes())
    out = tmp_path / "out.yaml"
    args = ["import", "slurm", "--site", "s", "-o", str(out)]
    for flag, p in files.items():
        args += [flag, str(p)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and not isinstance(res.exception, UnicodeError)
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert lines == [
        f"error: {files[which]}:1: "
        + {"--topology": "the topology file", "--nodes": "slurm.conf", "--jobs": "the jobs file"}[
            which
        ]
        + " is not UTF-8 text: byte 0xe9 at column 6; save it as UTF-8 (e.g. iconv -f latin1 -t "
        "utf-8)"
    ]
    assert not out.exists()


def test_an_unknown_key_on_a_switch_line_is_warned_with_file_line(tmp_path):
    p = tmp_path / "topology.conf"
    p.write_text(
        "SwitchName=top Switches=s[0-1]\n"
        "SwitchName=s0 Nodes=n[1-2] LinkSpeed=200 Foo=bar\n"
        "SwitchName=s1 Nodes=n[3-4] linkspeed=200 stray\n"
    )
    doc, warns = import_slurm([(p, "s")])
    mine = [w for w in warns if "ignored; such a line takes" in w.what]
    assert [(w.line, w.what.split(" on a ")[0]) for w in mine] == [
        (2, "unknown key Foo= (Foo=bar)"),
        (3, "a token without '=', 'stray'"),
    ]
    assert str(mine[0]).startswith(f"{p}:2: unknown key Foo=")
    # the keys Slurm knows are still read, in any case
    assert doc["topology"]["fabric"]["leaf"]["bandwidth_GBps"] == 25.0
    # and the same for topology.yaml entries
    y = tmp_path / "topology.yaml"
    y.write_text(
        "- topology: t\n  tree:\n    switches:\n"
        "      - switch: s0\n        nodes: n[1-2]\n        linkspeed: 200\n"
    )
    _, warns = import_slurm([(y, "s")])
    assert [(w.line, w.what) for w in warns if "unknown key" in w.what] == [
        (4, "unknown key 'linkspeed' of a switch entry ignored; it takes switch, children, nodes")
    ]


def test_block_warnings_cite_their_own_line_after_a_block_that_lost_its_nodes(tmp_path):
    p = tmp_path / "topology.conf"
    p.write_text(
        "BlockName=b1 Nodes=n[1-4]\n"
        "BlockName=b2 Nodes=n[1-4]\n"  # every node already in b1: b2 is left out
        "BlockName=b3 Nodes=n[5-8]\n"
        "BlockName=b4 Nodes=n[9-11]\n"  # one short of the base size: warned at line 4
        "BlockSizes=4\n"
    )
    _, warns = import_slurm([(p, "s")])
    short = [w for w in warns if "not the base block size" in w.what]
    assert [(w.line, w.what) for w in short] == [
        (4, "block b4 has 3 nodes, not the base block size 4")
    ]
    assert any(w.line == 2 and "block b2 has no nodes" in w.what for w in warns)
    p.write_text("BlockName=b1 Nodes=n[1-2]\nBlockName=b2 Nodes=n[1-2]\n")
    q = tmp_path / "slurm.conf"
    q.write_text("NodeName=m[1-2] Gres=gpu:h100:8\n")
    with pytest.raises(InstanceError, match="no block has any node"):
        import_slurm([(p, "s")], nodes=q)


# ---------------------------------------------------------------- SPEC v3 plans (issue 15)
NODE0 = [f"east/block-0/rack-0-0/gpu-node-00/gpu{k}" for k in range(8)]


def _plans_jobs(plan_name: str = "tp4pp2") -> dict:
    """A partial instance for the k8s fixture: a running job with plans, and one without."""
    return {
        "jobs": [
            {
                "name": "train-p",
                "kind": "training",
                "compute_ms": 2000,
                "value": 2.0,
                "current": list(NODE0),
                "current_plan": "tp8",
                "plans": [
                    {
                        "name": "tp8",
                        "tp": 8,
                        "dp": 4,
                        "min_dp": 1,
                        "scope": {"tp": "node", "dp": "rack"},
                        "comm": {"tp_MB": 100, "dp_MB": 400},
                    },
                    {
                        "name": plan_name,
                        "tp": 4,
                        "pp": 2,
                        "dp": 4,
                        "min_dp": 1,
                        "microbatches": 8,
                        "scope": {"tp": "node", "pp": "node", "dp": "rack"},
                        "comm": {"tp_MB": 50, "pp_MB": 20, "dp_MB": 200},
                    },
                ],
            },
            {"name": "serve-b", "kind": "inference", "tp": 8, "replicas": 3, "value": 1.0},
        ]
    }


def test_import_jobs_passes_plans_current_plan_and_microbatches_through(tmp_path):
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(yaml.safe_dump(_plans_jobs(), sort_keys=False))
    inst_path = tmp_path / "k.yaml"
    res = CliRunner().invoke(
        app,
        [
            *("import", "kubernetes", "--topology", str(D / "kueue_topology.yaml")),
            *("--nodes", str(D / "k8s_nodes.json"), "--site", "east"),
            *("--jobs", str(jobs), "-o", str(inst_path)),
        ],
    )
    assert res.exit_code == 0, res.output
    written = yaml.safe_load(inst_path.read_text())
    assert written["jobs"] == _plans_jobs()["jobs"]  # unchanged, key for key
    inst = placer.load_instance(inst_path)
    assert [p.name for p in inst.job("train-p").plans] == ["tp8", "tp4pp2"]
    # the library function too (Slurm's importer shares the partial-file reader)
    doc, _ = import_kubernetes(
        D / "kueue_topology.yaml", [D / "k8s_nodes.json"], sites=["east"], jobs=jobs
    )
    assert doc["jobs"] == _plans_jobs()["jobs"]


def test_export_carries_the_chosen_plan_to_the_launcher():
    kv = pytest.importorskip("kubernetes_validate")
    doc, _ = import_kubernetes(D / "kueue_topology.yaml", [D / "k8s_nodes.json"], sites=["east"])
    doc.update(_plans_jobs())
    inst = placer.load_instance(doc)
    serve = [
        f"east/block-1/rack-1-1/gpu-node-{n:02d}/gpu{k}" for n in (12, 13, 14) for k in range(8)
    ]
    pl = {
        "instance": inst.name,
        "jobs": [
            {"name": "train-p", "units": 1, "plan": "tp4pp2", "gpus": NODE0},
            {"name": "serve-b", "units": 3, "gpus": serve},
        ],
    }
    assert placer.check(inst, pl) == []
    env = {
        "PLACER_PLAN": "tp4pp2",
        "PLACER_TP": "4",
        "PLACER_PP": "2",
        "PLACER_DP": "1",
        "PLACER_MICROBATCHES": "8",
        "PLACER_RANK_ORDER": "tp-pp-dp",
    }
    train, srv = export_slurm(inst, pl)["jobs"]
    assert train["plan"] == "tp4pp2" and train["env"] == env
    export = "--export=ALL," + ",".join(f"{k}={v}" for k, v in env.items())
    assert export in train["sbatch"].split()
    # a job without plans: its shape, no plan; DP is the units placed (replicas here)
    assert srv["plan"] is None and "PLACER_PLAN" not in srv["env"]
    assert srv["env"] == {"PLACER_TP": "8", "PLACER_PP": "1", "PLACER_DP": "3"} | {
        "PLACER_RANK_ORDER": "tp-pp-dp"
    }
    k8s = export_kubernetes(inst, pl)["jobs"]
    assert [j["plan"] for j in k8s] == ["tp4pp2", None]
    for j in k8s:
        kv.validate(j["manifest"], "1.30", strict=True)
        (container,) = j["manifest"]["spec"]["template"]["spec"]["containers"]
        assert {e["name"]: e["value"] for e in container["env"]} == j["env"]
    assert k8s[0]["env"] == env


def test_exported_ranks_follow_the_env_rank_order_after_a_solve():
    doc, _ = import_kubernetes(D / "kueue_topology.yaml", [D / "k8s_nodes.json"], sites=["east"])
    doc.update(_plans_jobs())
    inst, pl = _solve(doc)
    out = export_slurm(inst, pl)
    for pj, j in zip(pl.jobs, out["jobs"], strict=True):
        if not pj.gpus:
            continue
        tp, pp = int(j["env"]["PLACER_TP"]), int(j["env"]["PLACER_PP"])
        assert j["env"].get("PLACER_PLAN") == pj.plan
        assert int(j["env"]["PLACER_DP"]) * tp * pp == len(pj.gpus)
        node_of = {}
        for r in j["rank_order"]:
            for part in r["ranks"].split(","):
                a, _, b = part.partition("-")
                node_of.update({k: r["node"] for k in range(int(a), int(b or a) + 1)})
        for rank, gpu in enumerate(pj.gpus):
            assert node_of[rank] == gpu.rsplit("/", 2)[-2]
        # rank r = t + tp*(p + pp*u): each TP group (tp consecutive ranks) on one node
        for first in range(0, len(pj.gpus), tp):
            assert len({node_of[r] for r in range(first, first + tp)}) == 1


def test_a_plan_name_sbatch_cannot_carry_is_left_to_the_script():
    doc, _ = import_kubernetes(D / "kueue_topology.yaml", [D / "k8s_nodes.json"], sites=["east"])
    doc.update(_plans_jobs(plan_name="tp 4, pp 2"))
    inst = placer.load_instance(doc)
    pl = {"jobs": [{"name": "train-p", "units": 1, "plan": "tp 4, pp 2", "gpus": NODE0}]}
    (j,) = export_slurm(inst, pl)["jobs"][:1]
    assert j["env"]["PLACER_PLAN"] == "tp 4, pp 2"
    args = shlex.split(j["sbatch"])
    (export,) = [a for a in args if a.startswith("--export=")]
    assert "PLACER_PLAN" not in export and "PLACER_TP=4" in export
    assert "PLACER_PLAN hold a comma" in j["note"]
    j = export_slurm(inst, {"jobs": [{**pl["jobs"][0], "plan": "tp8"}]})["jobs"][0]
    assert "PLACER_PLAN=tp8" in j["sbatch"] and "note" not in j


# ------------------------------------------- hostnames that repeat across sites (Kubernetes)

CASE_V3 = Path(__file__).parent / "data" / "examples" / "case-v3-plans.instance.yaml"
CASE_V3_PL = CASE_V3.with_name("case-v3-plans.placement.json")


def test_kubernetes_export_says_which_site_each_pod_is_in_when_hostnames_repeat():
    # SPEC's v3 example: T runs pod 0 on a/node0 and pod 1 on b/node0; S on a/node1
    kv = pytest.importorskip("kubernetes_validate")
    inst = placer.load_instance(CASE_V3)
    pl = json.loads(CASE_V3_PL.read_text())
    t, s = export_kubernetes(inst, pl)["jobs"]
    assert [(r["node"], r["site"]) for r in t["rank_order"]] == [("node0", "a"), ("node0", "b")]
    assert t["sites"] == ["a", "b"]
    assert t["note"].startswith("hostnames repeat across sites (node0 in a, b)")
    assert "split it per site cluster (pod 0 in a, pod 1 in b)" in t["note"]
    assert "placer/site" not in t["manifest"]["metadata"]["labels"]  # no one cluster holds it
    # the Slurm export says the same of T
    assert "hostnames repeat across sites" in export_slurm(inst, pl)["jobs"][0]["note"]
    # S lies in site a, whose node1 site b has too: the label names its cluster
    assert s["sites"] == ["a"] and s["rank_order"][0]["site"] == "a"
    for m in (s["manifest"]["metadata"], s["manifest"]["spec"]["template"]["metadata"]):
        assert m["labels"] == {"placer/job": "s", "placer/site": "a"}
    assert s["note"] == "hostname node1 also names a node in b: apply it to site a's cluster " + (
        "(label placer/site)"
    )
    for j in (t, s):
        kv.validate(j["manifest"], "1.30", strict=True)


def test_kubernetes_export_notes_a_job_across_sites_of_distinct_hostnames():
    d = yaml.safe_load(CASE_V3.read_text())
    d["topology"]["sites"][1]["domains"] = [{"name": "bnode", "count": 2}]
    del d["jobs"][0]["current"], d["jobs"][0]["current_plan"]
    inst = placer.load_instance(d)
    gpus = [f"{n}/gpu{k}" for n in ("a/node0", "b/bnode1") for k in range(4)]
    pl = {"jobs": [{"name": "T", "units": 1, "plan": "pp-across", "gpus": gpus}]}
    (t,) = export_kubernetes(inst, pl)["jobs"]
    assert t["note"] == (
        "spans sites a, b: a Job runs in one Kubernetes cluster; with one cluster per site, "
        "split it per site cluster (pod 0 in a, pod 1 in b)"
    )
    assert export_kubernetes(inst, {"jobs": [{**pl["jobs"][0], "gpus": gpus[4:] + gpus[:4]}]})[
        "jobs"
    ][0]["note"].endswith("(pod 0 in b, pod 1 in a)")


def test_cli_kubernetes_export_puts_the_site_notes_on_stderr_and_in_the_yaml():
    r = CliRunner().invoke(app, ["export", "kubernetes", str(CASE_V3), str(CASE_V3_PL)])
    assert r.exit_code == 0, r.output
    assert "note: T: hostnames repeat across sites (node0 in a, b)" in r.stderr
    assert "note: S: hostname node1 also names a node in b" in r.stderr
    head = r.stdout.splitlines()[:2]
    assert head[0] == (
        "# T (plan pp-across): pod 0 on node0 (site a): ranks 0-3; "
        "pod 1 on node0 (site b): ranks 4-7"
    )
    assert head[1].startswith("# note: hostnames repeat across sites (node0 in a, b)")
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    assert [d["metadata"]["labels"].get("placer/site") for d in docs] == [None, "a"]


def test_slurm_export_notes_a_one_site_job_whose_hostname_another_site_has():
    # S lies in site a on node1, which site b has too: submit it to site a's Slurm cluster
    inst = placer.load_instance(CASE_V3)
    pl = json.loads(CASE_V3_PL.read_text())
    t, s = export_slurm(inst, pl)["jobs"]
    assert s["note"] == "hostname node1 also names a node in b: submit it to site a's Slurm cluster"
    assert "hostnames repeat across sites" in t["note"] and "also names" not in t["note"]
    # distinct hostnames: no note
    d = yaml.safe_load(CASE_V3.read_text())
    d["topology"]["sites"][1]["domains"] = [{"name": "bnode", "count": 2}]
    del d["jobs"][0]["current"], d["jobs"][0]["current_plan"]
    s2 = export_slurm(placer.load_instance(d), {"jobs": [pl["jobs"][1]]})["jobs"][0]
    assert "note" not in s2
    r = CliRunner().invoke(app, ["export", "slurm", str(CASE_V3), str(CASE_V3_PL)])
    assert r.exit_code == 0, r.output
    assert "#   note: hostname node1 also names a node in b" in r.stdout
    assert "note: S: hostname node1 also names a node in b" in r.stderr


def test_slurm_export_says_whether_hostnames_repeat_inside_one_site_or_across_sites():
    """Two racks of site a each with a node0: the Slurm note says so (one Slurm cluster
    cannot have two node0), not "across sites", as the Kubernetes export's note does; a
    repeat across sites names the hostname and its sites."""
    import copy

    from builders import FABRIC_SITE_RACK_NODE, one_site, training

    d = one_site(nodes=4, gpus_per_node=2, jobs=[training("j", 4)])
    d["topology"]["levels"] = ["site", "rack", "node"]
    d["topology"]["fabric"] = copy.deepcopy(FABRIC_SITE_RACK_NODE)
    d["topology"]["sites"][0]["domains"] = [{"count": 2, "shape": [2]}]
    inst = placer.load_instance(d)
    gpus = [f"a/rack{r}/node0/gpu{k}" for r in (0, 1) for k in (0, 1)]
    pl = {"jobs": [{"name": "j", "units": 4, "gpus": gpus}]}
    (j,) = export_slurm(inst, pl)["jobs"]
    assert j["note"] == (
        "hostname node0 names several nodes of site a: Slurm node names are unique in a "
        "cluster, so the nodelist cannot tell them apart (the instance's node names must be "
        "the Slurm ones)"
    )
    (k,) = export_kubernetes(inst, pl)["jobs"]
    assert k["note"].startswith("hostname node0 names several nodes of site a")
    # across sites (SPEC's v3 example: T on a/node0 and b/node0): which hostname, which sites
    t = export_slurm(placer.load_instance(CASE_V3), json.loads(CASE_V3_PL.read_text()))["jobs"][0]
    assert t["note"].startswith("hostnames repeat across sites (node0 in a, b): submit per site")
    assert "names several nodes" not in t["note"]


@pytest.mark.parametrize("sites", [1, 2])
def test_exports_note_a_repeated_hostname_followed_by_other_nodes(sites):
    """Two racks with a node0 each, and a job on rack0/node0, rack1/node0 and rack0/node1:
    the note of the repeat stopped at it, and the next hostname (node1) was looked up where
    it had not been recorded (KeyError, both exports)."""
    import copy

    from builders import FABRIC_SITE_RACK_NODE, one_site, training

    d = one_site(nodes=4, gpus_per_node=1, jobs=[training("j", 3)])
    d["topology"]["levels"] = ["site", "rack", "node"]
    d["topology"]["fabric"] = copy.deepcopy(FABRIC_SITE_RACK_NODE)
    d["topology"]["sites"][0]["domains"] = [{"count": 2, "shape": [2]}]
    if sites == 2:
        b = copy.deepcopy(d["topology"]["sites"][0])
        b["name"] = "b"
        d["topology"]["sites"].append(b)
        d["topology"]["wan"] = [{"between": ["a", "b"], "latency_us": 500, "bandwidth_GBps": 100}]
    inst = placer.load_instance(d)
    gpus = ["a/rack0/node0/gpu0", "a/rack1/node0/gpu0", "a/rack0/node1/gpu0"]
    pl = {"jobs": [{"name": "j", "units": 3, "gpus": gpus}]}
    (j,) = export_slurm(inst, pl)["jobs"]
    assert j["note"].startswith("hostname node0 names several nodes of site a: Slurm")
    (k,) = export_kubernetes(inst, pl)["jobs"]
    assert k["note"].startswith("hostname node0 names several nodes of site a: Kubernetes")
    if sites == 2:  # node0 and node1 are b's names too
        assert j["note"].endswith(
            "hostname node0 also names a node in b: submit it to site a's Slurm cluster"
        )
        assert k["note"].endswith("apply it to site a's cluster (label placer/site)")
