import csv

from nst_keras.progress import write_history


def test_csv_history_with_records_of_different_keys(tmp_path):
    # A tiled run: the base pass's records have no 'tile', the tiles' records do.
    history = [{"iteration": 1, "loss": 2.0}, {"iteration": 2, "loss": 1.5, "tile": 0}]
    path = tmp_path / "loss.csv"
    write_history(str(path), history)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["iteration", "loss", "tile"]
    assert rows[0]["tile"] == "" and rows[1]["tile"] == "0"
    assert [float(r["loss"]) for r in rows] == [2.0, 1.5]
