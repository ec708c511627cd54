"""The credit example's world in a store, as several test modules start: its reference months ingested, the contract inferred
without the target and outcome time and registered, the credit spec registered."""
from wildproof.contracts import infer_contract
from wildproof.datasets import ingest
from wildproof.examples.credit import world
from wildproof.examples.credit.features import credit_spec


def credit_world(store, *, rows: int, seed: int, contract: str = 'loan_applications', model: str = 'credit_risk', reference: str = 'loans_reference'):
    "(the world's reference rows, the rows after them, the reference snapshot, the spec) in `store`."
    reference_rows, rest = world.split_reference(world.generate_world(rows=rows, seed=seed), 6)
    snap = ingest(store, reference, reference_rows)
    infer_contract(store, snap, name=contract, key=world.key, time_column=world.time_column,
                   exclude=[world.target, world.outcome_time_column]).register(store)
    return reference_rows, rest, snap, credit_spec(store, contract, model=model).register(store)
