"""`wildproof new` writes a starter notebook that walks a data scientist's own data through the lifecycle; papermill runs it
on the car-loan data as a user would (its own folder, its own features module, parameters for their data)."""
import json
from pathlib import Path

import pandas as pd
import pytest

from tests.test_cli import run

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'car_loan'
if not (DATA / 'reference.csv').is_file():
    pytest.skip(f'the car loan data set is not at {DATA}', allow_module_level=True)


def test_the_starter_notebook_on_car_loans(tmp_path):
    import papermill as pm
    work = tmp_path / 'my_project'
    assert 'wrote' in run('new', work, cwd=tmp_path).stdout
    (work / 'features.py').write_text((work / 'features.py').read_text().replace(
        "    # out['price_per_unit']", "    out['value_per_month'] = rows['car_value'] / rows['loan_length']\n    # out['price_per_unit']"))
    a = pd.read_csv(DATA / 'analysis.csv').merge(pd.read_csv(DATA / 'analysis_target.csv'), on='id')
    a.iloc[:10_000].to_csv(work / 'eval.csv', index=False)
    a.iloc[10_000:20_000].drop(columns=['repaid']).to_csv(work / 'batch.csv', index=False)
    a.iloc[10_000:20_000][['id', 'repaid']].to_csv(work / 'outcomes.csv', index=False)
    pm.execute_notebook(str(work / 'starter.ipynb'), str(work / 'out.ipynb'), cwd=str(work), kernel_name='python3', progress_bar=False,
                        parameters=dict(store=str(work / 'store'), model='car_loan', reference=str(DATA / 'reference.csv'),
                                        evaluation=str(work / 'eval.csv'), batch=str(work / 'batch.csv'), outcomes=str(work / 'outcomes.csv'),
                                        target='repaid', task='binary', positive=1, key='id', time_column='timestamp',
                                        exclude=['y_pred', 'y_pred_proba']))
    text = json.dumps(json.loads((work / 'out.ipynb').read_text())['cells'])
    assert 'is now production' in text or "'stage': 'production'" in text, text[-3000:]
    assert 'scored 10,000 of 10,000 rows' in text
    assert '10000 outcomes recorded' in text
    # the user's own feature went into the model, and its module was packaged with the version
    from wildproof.store import Store
    from wildproof.training import model_version
    mv = model_version(Store(work / 'store'), 'car_loan', 1)
    assert mv.features.row == ['value_per_month'] and mv.features.code == 'features:build'
    assert list((work / 'store' / 'mlartifacts').rglob('code/features.py'))
