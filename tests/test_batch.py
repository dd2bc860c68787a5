"""nst-batch: inputs, sweeps and names (no Ray), then real local Ray runtimes and a simulated
two-node cluster that loses a node mid-batch."""
import dataclasses
import json
import os
import subprocess
import sys
import threading

import pytest

from nst_keras.batch import plan
from nst_keras.batch.run import MANIFEST, read_manifest
from nst_keras.cli import batch as cli
from nst_keras.errors import UserError
from nst_keras.gatys.config import GatysConfig
from nst_keras.image import load_image, read_png_metadata
from conftest import write_image

FAST = ["--model", "vgg16", "--weights", "random", "--size", "32", "--iterations", "2", "--coarse-size", "0",
        "--content-layers", "block2_conv1", "--style-layers", "block1_conv1,block2_conv1", "-q"]
FAST_CONFIG = GatysConfig(model="vgg16", weights="random", size=32, iterations=2, coarse_size=0,
                          content_layers=("block2_conv1",), style_layers=("block1_conv1", "block2_conv1"))


def batch(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def outputs(outdir):
    return sorted(n for n in os.listdir(outdir) if n.endswith(".png") and n != "sweep.png")


def snapshot(outdir):
    return {n: os.stat(os.path.join(outdir, n)).st_mtime_ns for n in os.listdir(outdir)}


def check_finished(outdir, names, temporary_files=False):
    """Every name is a whole PNG with its sidecar; no temporary file is left (unless allowed: a
    process killed mid-write leaves one, which the next run removes)."""
    assert temporary_files or not [n for n in os.listdir(outdir) if n.startswith(".tmp-")]
    for name in names:
        path = os.path.join(str(outdir), name)
        assert load_image(path).shape[2] == 3  # decodes to the end: not half-written
        with open(path[:-4] + ".json") as f:
            sidecar = json.load(f)
        assert sidecar["batch"]["config"]["size"] == 32 and "history" in sidecar
        assert read_png_metadata(path)["final_loss"] == sidecar["final_loss"]


def make_folders(root, num_contents=3, style_ext=".jpg"):
    """root/contents with c0.png ... and root/styles with s0, s1 (tiny images made here)."""
    contents, styles = root / "contents", root / "styles"
    contents.mkdir()
    styles.mkdir()
    for i in range(num_contents):
        write_image(contents / f"c{i}.png", 40, 48, i)
    for i in range(2):
        write_image(styles / f"s{i}{style_ext}", 36, 36, 10 + i)
    return contents, styles


@pytest.fixture
def folders(tmp_path):
    contents, styles = make_folders(tmp_path)
    (contents / "notes.txt").write_text("not an image")
    return contents, styles


# ---- without Ray -------------------------------------------------------------------------------

def test_every_config_field_has_a_flag_with_its_default():
    parser = cli.build_parser()
    flags = {opt for action in parser._actions for opt in action.option_strings}
    for field in dataclasses.fields(GatysConfig):
        assert "--" + field.name.replace("_", "-") in flags, field.name
    args = parser.parse_args(["c.png", "--styles", "s.png", "-o", "out"])
    assert cli.config_from_args(GatysConfig, args) == GatysConfig()
    args = parser.parse_args(["c.png", "--styles", "s.png", "--style-layers", "block1_conv1,block2_conv1",
                              "--original-colors", "--style-weight", "0.5"])
    config = cli.config_from_args(GatysConfig, args)
    assert config.style_layers == ("block1_conv1", "block2_conv1") and config.style_weight == 0.5
    assert config.original_colors == "luminance"


def test_importing_the_package_does_not_import_ray():
    code = ("import sys, nst_keras, nst_keras.losses, nst_keras.layers, nst_keras.batch.plan, "
            "nst_keras.batch.worker, nst_keras.cli.batch; assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def test_without_ray_one_line_how_to_install(folders, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when it is not installed
    contents, styles = folders
    code, err = batch(capsys, contents, "--styles", styles, "-o", tmp_path / "out", *FAST)
    assert code == 2
    assert err.strip().splitlines() == ["nst-batch: error: Ray is not installed; install it with: "
                                        "pip install 'nst_keras[batch]' (or: pip install ray)"]


def test_inputs_expand_files_folders_and_globs(folders, tmp_path):
    contents, styles = folders
    found = plan.expand_inputs([str(contents), str(styles / "s1.jpg"), str(styles / "*.jpg")], "content")
    assert [os.path.basename(p) for p in found] == ["c0.png", "c1.png", "c2.png", "s1.jpg", "s0.jpg"]
    with pytest.raises(UserError, match="does not exist"):
        plan.expand_inputs([str(tmp_path / "missing.png")], "content")
    with pytest.raises(UserError, match="matches no file"):
        plan.expand_inputs([str(tmp_path / "*.tif")], "style")
    with pytest.raises(UserError, match="output folder"):
        plan.expand_inputs([str(contents)], "content", outdir=str(contents))


def test_sweep_values_are_read_by_the_field_type():
    parsers = cli.build_parser().value_parsers
    sweep = plan.parse_sweep(["style_weight=1e-3,1e+2", "style-layers=block1_conv1+block2_conv1,block3_conv1",
                              "iterations=5,10", "style_size=none,64", "pooling=max,avg"], parsers)
    assert sweep == [("style_weight", (1e-3, 100.0)),
                     ("style_layers", (("block1_conv1", "block2_conv1"), ("block3_conv1",))),
                     ("iterations", (5, 10)), ("style_size", (None, 64)), ("pooling", ("max", "avg"))]
    assert len(plan.sweep_points(sweep)) == 32
    with pytest.raises(UserError, match="did you mean 'tv_weight'"):
        plan.parse_sweep(["tv_wieght=1,2"], parsers)
    with pytest.raises(UserError, match="iterations value 'ten'"):
        plan.parse_sweep(["iterations=5,ten"], parsers)
    with pytest.raises(UserError, match="FIELD=V1,V2"):
        plan.parse_sweep(["style_weight"], parsers)


def test_output_names_and_collisions(tmp_path):
    point = (("style_weight", 0.001), ("style_layers", ("block1_conv1", "block2_conv1")))
    assert plan.output_name("a/cat photo.jpg", "b/wave.png", point) == \
        "cat_photo__wave__style_weight-0.001__style_layers-block1_conv1+block2_conv1.png"
    assert plan.output_name("cat.jpg", "wave.png", ()) == "cat__wave.png"
    with pytest.raises(UserError, match="would both be written to x__s.png"):
        plan.build_items(["a/x.png", "b/x.jpg"], ["s.png"], GatysConfig(), [], str(tmp_path))
    with pytest.raises(UserError, match="style_weight -1"):
        plan.build_items(["x.png"], ["s.png"], GatysConfig(), [("style_weight", (1.0, -1.0))], str(tmp_path))


def test_dry_run_lists_the_work_and_predicts_time(folders, tmp_path, capsys):
    contents, styles = folders
    code = cli.main([str(contents), "--styles", str(styles), "-o", str(tmp_path / "out"), "--dry-run",
                     "--sweep", "tv_weight=1,10", *FAST])
    out = capsys.readouterr().out
    assert code == 0
    assert "run   c2__s1__tv_weight-10.png: 32x27" in out
    assert "12 items: 12 to run, 0 finished; predicted" in out
    assert not os.path.exists(tmp_path / "out")


def test_worker_does_not_recompute_a_finished_item(folders, tmp_path):
    """A retry that meets its outputs already written (a worker lost after writing) reuses them."""
    from nst_keras.batch.worker import BatchWorker
    from nst_keras.cli.common import describe_input

    contents, styles = folders
    item = plan.build_items([str(contents / "c0.png")], [str(styles / "s0.jpg")], FAST_CONFIG, [],
                            str(tmp_path))[0]
    inputs = {"content": describe_input(item.content), "style": describe_input(item.style)}
    worker = BatchWorker()
    first = worker.run(item, inputs)
    assert first["status"] == "done" and not first["reused"] and first["final_loss"] > 0
    before = snapshot(tmp_path)
    second = worker.run(item, inputs)
    assert second == dict(second, status="done", reused=True, final_loss=first["final_loss"])
    assert snapshot(tmp_path) == before
    assert worker.run(item, dict(inputs, content=describe_input(item.style)))["status"] == "failed"


# ---- a real local Ray runtime -----------------------------------------------------------------

@pytest.fixture(scope="module")
def folder_batch(tmp_path_factory):
    """Three contents (plus a truncated one) x two styles on two local workers, run once."""
    root = tmp_path_factory.mktemp("folder_batch")
    contents, styles = make_folders(root)
    outdir = root / "out"
    broken = write_image(contents / "broken.png", 40, 48, 5)
    data = open(broken, "rb").read()
    open(broken, "wb").write(data[: len(data) // 2])
    argv = [str(contents), "--styles", str(styles / "*.jpg"), "-o", str(outdir), "--workers", "2", *FAST]
    code = cli.main(argv)
    return {"code": code, "outdir": outdir, "argv": argv, "broken": broken}


@pytest.mark.slow
def test_folder_of_three_times_two_styles_on_two_workers(folder_batch):
    outdir = folder_batch["outdir"]
    names = [f"c{i}__s{j}.png" for i in range(3) for j in range(2)]
    assert outputs(outdir) == sorted(names)
    check_finished(outdir, names)
    records = read_manifest(os.path.join(outdir, MANIFEST))
    done = [r for r in records if r["status"] == "done"]
    assert sorted(r["output"] for r in done) == sorted(names)
    for r in done:
        assert r["inputs"]["content"]["name"] == r["output"].split("__")[0] + ".png"
        assert r["final_loss"] > 0 and r["seconds"] > 0 and r["worker"]["pid"] and r["attempts"] == 1
        assert r["parameters"]["size"] == 32 and r["error"] is None
    assert len({r["worker"]["pid"] for r in done}) == 2  # both workers took items


@pytest.mark.slow
def test_a_truncated_content_fails_and_the_rest_finish(folder_batch):
    assert folder_batch["code"] == 1
    records = read_manifest(os.path.join(folder_batch["outdir"], MANIFEST))
    failed = [r for r in records if r["status"] == "failed"]
    assert sorted(r["output"] for r in failed) == ["broken__s0.png", "broken__s1.png"]
    assert all("broken.png" in r["error"] and "cannot be read" in r["error"] for r in failed)
    assert all(r["attempts"] == 1 for r in failed)  # a bad input is not retried
    assert not os.path.exists(os.path.join(folder_batch["outdir"], "broken__s0.png"))
    assert len(records) == 8


@pytest.mark.slow
def test_a_rerun_recomputes_nothing(folder_batch, capsys):
    outdir = folder_batch["outdir"]
    os.remove(folder_batch["broken"])
    before = snapshot(outdir)
    code, err = batch(capsys, *[a for a in folder_batch["argv"] if a != "-q"])
    assert code == 0
    assert err.strip().splitlines()[-1] == "nst-batch: 0 done, 6 skipped, 0 failed (every output is finished)"
    assert snapshot(outdir) == before  # outputs, sidecars and manifest untouched
    # other parameters into the same folder: refused, nothing rewritten
    code, err = batch(capsys, *folder_batch["argv"], "--tv-weight", "5")
    assert code == 2 and "do not match this batch" in err and "tv_weight" in err
    assert snapshot(outdir) == before


@pytest.mark.slow
def test_sweep_makes_its_grid_and_sheet(folders, tmp_path, capsys):
    from PIL import Image

    contents, styles = folders
    outdir = tmp_path / "sweep"
    code, _ = batch(capsys, contents / "c0.png", "--styles", styles / "s0.jpg", "-o", outdir, *FAST,
                    "--sweep", "style_weight=0,10", "--sweep", "tv_weight=0,100", "--workers", "1")
    assert code == 0
    names = [f"c0__s0__style_weight-{a}__tv_weight-{b}.png" for a in ("0", "10") for b in ("0", "100")]
    assert outputs(outdir) == sorted(names)
    check_finished(outdir, names)
    losses = {}
    for name in names:
        with open(os.path.join(outdir, name[:-4] + ".json")) as f:
            sidecar = json.load(f)
        sweep = sidecar["batch"]["sweep"]
        assert sidecar["config"]["style_weight"] == sweep["style_weight"]
        assert sidecar["config"]["tv_weight"] == sweep["tv_weight"]
        losses[sweep["style_weight"], sweep["tv_weight"]] = sidecar["final_terms"]
    assert losses[0.0, 0.0]["style"] == 0 and losses[10.0, 0.0]["style"] > 0
    assert losses[10.0, 0.0]["tv"] == 0 and losses[10.0, 100.0]["tv"] > 0
    with Image.open(outdir / "sweep.png") as sheet:
        width, height = sheet.size
    assert 2 * 160 < width < 3 * 160 and 2 * 160 < height < 3 * 160  # 2 columns x 2 rows, labelled
    records = read_manifest(os.path.join(outdir, MANIFEST))
    assert sorted((r["sweep"]["style_weight"], r["sweep"]["tv_weight"]) for r in records) == \
        [(0.0, 0.0), (0.0, 100.0), (10.0, 0.0), (10.0, 100.0)]


@pytest.mark.slow
def test_a_node_lost_mid_batch_still_writes_every_output_once(tmp_path, capsys):
    from ray.cluster_utils import Cluster

    contents, styles = make_folders(tmp_path, num_contents=5, style_ext=".png")
    outdir = tmp_path / "out"
    outdir.mkdir()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    worker_node = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    removed, stop = {}, threading.Event()

    def remove_when_the_node_has_worked():
        manifest = os.path.join(outdir, MANIFEST)
        while not stop.wait(0.2):
            records = read_manifest(manifest)
            if any((r.get("worker") or {}).get("node") == worker_node.node_id[:12] for r in records):
                removed["after"] = len(records)
                cluster.remove_node(worker_node)
                return

    watcher = threading.Thread(target=remove_when_the_node_has_worked)
    watcher.start()
    try:
        code, err = batch(capsys, contents, "--styles", styles, "-o", outdir, "--ray-address", cluster.address,
                          "--workers", "2", *FAST[:-1], "--iterations", "20", "-q")
    finally:
        stop.set()
        watcher.join()
        cluster.shutdown()
    assert code == 0, err
    assert 0 < removed["after"] < 10  # the node went while items remained
    names = [f"c{i}__s{j}.png" for i in range(5) for j in range(2)]
    assert outputs(outdir) == sorted(names)
    check_finished(outdir, names)
    records = read_manifest(os.path.join(outdir, MANIFEST))
    assert sorted(r["output"] for r in records) == sorted(names)  # one record per output
    assert all(r["status"] == "done" for r in records)
    nodes = {r["worker"]["node"] for r in records}
    assert worker_node.node_id[:12] in nodes and len(nodes) == 2


@pytest.mark.slow
def test_an_interrupted_batch_is_continued_by_the_same_command(folders, tmp_path, capsys):
    import signal

    contents, styles = folders
    outdir = tmp_path / "out"
    # 100 iterations: each item takes seconds, so that the interrupt lands while items remain.
    argv = [str(contents), "--styles", str(styles), "-o", str(outdir), "--workers", "1", *FAST[:-1],
            "--iterations", "100", "-q"]
    driver = subprocess.Popen([sys.executable, "-c", "import sys; from nst_keras.cli.batch import main; "
                               f"sys.exit(main({argv!r}))"], env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                              stderr=subprocess.PIPE, text=True, start_new_session=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    manifest = os.path.join(outdir, MANIFEST)
    while driver.poll() is None and not read_manifest(manifest):
        threading.Event().wait(0.2)
    # In full-suite runs the driver ignored every SIGINT (exit 0, nothing on stderr): it inherits
    # an ignored SIGINT from this process there, hence SIG_DFL in the child, as in a terminal.
    # Ctrl-C is pressed again if the driver still runs 15 s later (its shutdown takes seconds).
    while driver.poll() is None:
        driver.send_signal(signal.SIGINT)
        try:
            driver.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    _, err = driver.communicate()
    assert driver.returncode == 130, err
    assert "run the same command again to continue" in err
    first = read_manifest(manifest)
    assert 1 <= len(first) < 6
    finished = outputs(outdir)
    check_finished(outdir, [n for n in finished if os.path.exists(os.path.join(outdir, n[:-4] + ".json"))],
                   temporary_files=True)
    before = {n: os.stat(os.path.join(outdir, n)).st_mtime_ns for n in finished}
    code, err = batch(capsys, *argv)
    assert code == 0, err
    names = [f"c{i}__s{j}.png" for i in range(3) for j in range(2)]
    assert outputs(outdir) == sorted(names)
    check_finished(outdir, names)
    records = read_manifest(manifest)
    assert sorted(r["output"] for r in records) == sorted(names)  # each computed once over the two runs
    done_first = {r["output"] for r in first}
    assert all(os.stat(os.path.join(outdir, n)).st_mtime_ns == before[n] for n in done_first)
