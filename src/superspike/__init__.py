"""superspike: SuperSpike (Zenke & Ganguli 2018) for Python, faithful to the reference simulator.

Data flow: task (input and target rasters) -> network (a graph of named groups and connections,
weights) -> engine (simulate an update interval) -> rule (surrogate, eligibility, error; cost) ->
optimiser (RMaxProp) -> run (configuration, schedule, monitors) -> outputs (run directory, plots,
exports).
"""

from superspike.engine import State, get_engine
from superspike.errors import UserError
from superspike.network import Connection, Group, Network, NetworkSpec
from superspike.params import NeuronParams, RegularizerParams, RuleParams
from superspike.run.config import GraphConfig, GroupConfig, RunConfig, load_config, resolve
from superspike.run.simulation import Simulation
from superspike.run.train import RunResult, train
from superspike.task import Raster, Task, get_task, load_raster

__version__ = "0.1.0"

__all__ = [
    "Connection",
    "GraphConfig",
    "Group",
    "GroupConfig",
    "Network",
    "NetworkSpec",
    "NeuronParams",
    "Raster",
    "RegularizerParams",
    "RuleParams",
    "RunConfig",
    "RunResult",
    "Simulation",
    "State",
    "Task",
    "UserError",
    "get_engine",
    "get_task",
    "load_config",
    "load_raster",
    "resolve",
    "train",
]
