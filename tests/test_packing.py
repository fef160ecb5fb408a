import numpy as np
import pyarrow as pa

from nanorec.packing import PAD_TARGET, pack, read_rows, rows_table, windows


def test_windows_keep_latest_items_and_cover_every_target():
    sequence = np.arange(1, 11)  # 10 items -> 9 targets
    cut = windows(sequence, block_size=4)
    assert list(cut[0]) == [6, 7, 8, 9, 10]  # newest window first
    targets = np.concatenate([w[1:] for w in cut])
    assert sorted(targets) == list(range(2, 11))
    assert all(len(w) <= 5 for w in cut)


def test_windows_skip_single_item_history():
    assert windows(np.array([3]), block_size=4) == []


def test_pack_positions_restart_per_sequence():
    sequences = [np.array([1, 2, 3]), np.array([4, 5, 6, 7]), np.array([8, 9])]
    rows = pack(sequences, block_size=8)
    assert rows.idx.shape == (1, 8)
    real = rows.targets[0] != PAD_TARGET
    seq = rows.seq_id[0][real]
    pos = rows.pos[0][real]
    for s in np.unique(seq):
        assert list(pos[seq == s]) == list(range((seq == s).sum()))


def test_pack_shifts_inputs_and_targets_by_one():
    rows = pack([np.array([10, 11, 12, 13])], block_size=4)
    assert list(rows.idx[0, :3]) == [10, 11, 12]
    assert list(rows.targets[0, :3]) == [11, 12, 13]
    assert rows.targets[0, 3] == PAD_TARGET
    assert rows.seq_id[0, 3] == -1


def test_pack_keeps_every_pair_once():
    rng = np.random.default_rng(0)
    sequences = [rng.integers(1, 50, size=rng.integers(2, 40)) for _ in range(200)]
    rows = pack(sequences, block_size=16)
    real = rows.targets != PAD_TARGET
    expected = sorted(
        (a, b) for s in sequences for w in windows(s, 16) for a, b in zip(w[:-1], w[1:])
    )
    got = sorted(zip(rows.idx[real].tolist(), rows.targets[real].tolist()))
    assert got == [tuple(map(int, p)) for p in expected]
    assert rows.efficiency > 0.97


def test_packed_rows_round_trip_through_arrow(tmp_path):
    import pyarrow.parquet as pq

    rows = pack([np.array([1, 2, 3]), np.array([4, 5])], block_size=4)
    pq.write_table(rows_table(rows), tmp_path / "rows.parquet")
    back = read_rows(pq.read_table(tmp_path / "rows.parquet"))
    for name in ("idx", "targets", "pos", "seq_id"):
        assert np.array_equal(getattr(back, name), getattr(rows, name))
    assert isinstance(rows_table(rows), pa.Table)
