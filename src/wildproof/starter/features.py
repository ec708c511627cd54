"""Your own features. The model spec names this function (`features: features:build`): training, batch scoring and
the REST service all call it, so a feature is computed one way everywhere. It takes the input rows and returns a
DataFrame of new columns with the same index; wildproof packages this file with every model version built with it."""
import pandas as pd


def build(rows: pd.DataFrame) -> pd.DataFrame:
    "Extra feature columns for `rows` (one output row per input row, same index)."
    out = pd.DataFrame(index=rows.index)
    # out['price_per_unit'] = rows['price'] / rows['units'].where(rows['units'] > 0)   # for example
    return out
