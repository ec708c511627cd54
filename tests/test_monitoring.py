"""Monitoring on the peer car loan data set (NannyML's synthetic car loans): drift and estimated performance in chunks, against realized performance."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wildproof.monitoring import chunk_metrics

DATA = Path(__file__).resolve().parents[1].parent / 'shared' / 'data' / 'car_loan'
COLUMNS = {'car_value': 'numeric', 'salary_range': 'categorical', 'debt_to_income_ratio': 'numeric', 'loan_length': 'numeric',
           'repaid_loan_on_prev_car': 'categorical', 'size_of_downpayment': 'categorical', 'driver_tenure': 'numeric'}


@pytest.fixture(scope='module')
def chunks():
    if not (DATA / 'analysis_target.csv').is_file(): pytest.skip(f'the car loan data set is not at {DATA}')
    ref = pd.read_csv(DATA / 'reference.csv')
    ana = pd.read_csv(DATA / 'analysis.csv').merge(pd.read_csv(DATA / 'analysis_target.csv'), on='id')
    for d in (ref, ana): d['repaid_loan_on_prev_car'] = d.repaid_loan_on_prev_car.astype(str)
    return chunk_metrics(ref, ana.sort_values('timestamp'), COLUMNS, score='y_pred_proba', threshold=0.5, target='repaid', chunk_rows=5_000)


def test_estimated_performance_tracks_the_realized(chunks):
    assert len(chunks) == 10
    err = (chunks.estimated_roc_auc - chunks.roc_auc).abs()
    assert err.max() < 0.03, chunks[['chunk', 'roc_auc', 'estimated_roc_auc']]
    # the analysis period's second half loses accuracy, and the estimate sees it without a single label
    first, second = chunks.iloc[:5], chunks.iloc[5:]
    assert second.accuracy.mean() < first.accuracy.mean() - 0.02
    assert second.estimated_accuracy.mean() < first.estimated_accuracy.mean() - 0.02
    assert np.corrcoef(chunks.accuracy, chunks.estimated_accuracy)[0, 1] > 0.9


def test_drift_shows_where_the_shift_is(chunks):
    psi = chunks.filter(like='psi_')
    first, second = psi.iloc[:5], psi.iloc[5:]
    assert (first.max() < 0.1).all(), first.max()               # the first half is like the reference
    moved = second.mean()[second.mean() > 0.1].index.str.removeprefix('psi_')
    assert len(moved) >= 1, second.mean()
    assert (chunks[[f'status_{c}' for c in moved]].iloc[5:] != 'stable').all().all()
