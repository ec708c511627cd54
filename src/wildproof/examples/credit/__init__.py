"""The credit example: a seeded world of loan applications with scripted drift and a data incident (`world`), the
credit model's features (`features:build`) and spec (`features.credit_spec`), and the job `wildproof demo` runs (`demo`).

Exported from nbs/20_example_credit_world.ipynb, nbs/21_example_credit_features.ipynb and nbs/22_example_credit_demo.ipynb;
this file is not generated."""
