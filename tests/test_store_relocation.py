"""A store is a folder: copied or moved, it loads its own models (MLflow's absolute artifact locations are rewritten on open)."""
import shutil, sqlite3

from wildproof.scoring import ScoringCore
from wildproof.store import Store


def test_a_moved_copy_loads_its_own_models_after_the_folder_it_came_from_is_gone(demo_copy, tmp_path):
    first = Store(demo_copy)   # the copy of the default demo's store: its MLflow database pointed at the demo's folder
    assert first.relocated and all(not u.startswith(demo_copy.as_uri()) for u in first.relocated)
    dest = tmp_path / 'moved'
    shutil.move(demo_copy, dest)   # the folder it was relocated to is gone now
    s = Store(dest)
    assert s.relocated == [(demo_copy / 'mlartifacts').as_uri()]
    db = sqlite3.connect(dest / 'mlflow.db')
    for table, col in (('runs', 'artifact_uri'), ('logged_models', 'artifact_location'), ('model_versions', 'storage_location')):
        uris = [u for (u,) in db.execute(f'select {col} from {table}')]
        assert uris and all(u.startswith((dest / 'mlartifacts').as_uri() + '/') for u in uris), (table, uris[:2])
    core = ScoringCore(s, model='credit_risk', source='batch')
    try:
        assert core.routes['champion'].ok, core.routes['champion'].error
        answers, _ = core.score_frame(_rows(s, core.contract), ids=['moved-0', 'moved-1'], source='batch')
        assert answers.score.notna().all()
    finally: core.close()
    ev = s.sql("select subject, detail_json from events where kind = 'store_relocated' order by time")
    assert ev.subject.tolist()[-1] == str(dest)
    assert Store(dest).relocated == []   # once is enough


def _rows(store, contract):
    "Two accepted rows of the demo's latest applications snapshot."
    from wildproof.contracts import validated
    from wildproof.datasets import list_snapshots
    for snap in reversed(list_snapshots(store, 'loan_applications').snapshot_id.tolist()):
        v = validated(store, snap, contract)
        if v.ok: return v.accepted().head(2)
