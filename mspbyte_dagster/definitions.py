"""The one Definitions object: every asset, job and resource. Connects to nothing."""

import warnings

from dagster import BetaWarning, Definitions, with_source_code_references

from mspbyte_dagster.defs.assets import tenant_pipeline
from mspbyte_dagster.defs.jobs import tenant_pipeline_job
from mspbyte_dagster.defs.resources import DatabaseResource

# Code references are beta in 1.13; they are worth it, the warning at every load is not.
warnings.filterwarnings("ignore", category=BetaWarning)

defs = Definitions(
    assets=with_source_code_references([tenant_pipeline]),
    jobs=[tenant_pipeline_job],
    resources={"database": DatabaseResource()},
)
