"""Training on more than one process: PyTorch DDP through Lightning, on CPUs (gloo) or GPUs (NCCL).

A run's processes form one group: ``devices`` per node (GPUs, or CPU processes) times
``num_nodes`` machines. Each process holds a copy of the network, trains on its share of every
batch, and the gradients are averaged across the group before each step, so that every copy
takes the same step. What this module keeps true of such a run:

* **the batch**: ``batch_size`` is the batch of one optimizer step, shared out: each process
  takes ``batch_size / world_size`` items (:func:`layout` refuses a batch that does not divide).
  Lightning gives each process its share of the items through a ``DistributedSampler``, whose
  order for epoch ``e`` is a permutation seeded by ``seed + e``: process ``r`` of ``N`` takes
  its items ``r, r + N, ...``. A one-process run draws the same permutation
  (:func:`one_process_sampler`), so step ``k`` of an epoch trains on the same items whatever the
  number of processes: ``--devices`` changes where the work runs, not what a step is, and the
  learning rate and the other settings carry over. What still differs is the statistics of
  BatchNorm, taken per process over its share (SyncBatchNorm, which would gather them, does
  not run on CPUs), the draws of crops, augmentation and dropout, and the order of float sums.
* **validation** is computed on the whole valid split, in every process alike: each process
  scores its share (the sampler pads the last one by repeating items), the rows are gathered
  with their item numbers (:class:`Indexed`, :func:`gather_rows`), the repeats dropped, and
  the metric computed over the items in their order, as one process computes it. Early
  stopping, the learning-rate schedule and the best checkpoint then agree in every process.
* **random draws** differ per process (:func:`rank_seed`, applied by
  :class:`tuneseek.train.tasks.RankSeed`): crops, augmentation and dropout of process 1 are not a
  copy of process 0's.
* **files**: only the first process (global rank 0) writes: logs, checkpoints, the exported run.
  The others learn their rank from their launcher's environment before Lightning sets it up
  (:func:`launched_rank`), so that they neither refuse the run folder the first one has just
  started nor print every line again.

* **lifetime**: as with every worker of :mod:`tuneseek.processes`, a process started for a run
  ends with the process that started it, however that ends (:func:`end_with_parent`); and when
  the first process fails while training, it ends the processes it started (:func:`end_started`)
  rather than leave them waiting for it in a collective, which would last the process group's
  timeout (half an hour).

Strategies: ``ddp`` starts the other processes by running the same command line again (the
processes of a node are started by the first; :command:`torchrun`, SLURM or a person may start
them all instead, with ``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` and ``MASTER_ADDR``/``MASTER_PORT``
set); ``ddp_spawn`` starts them from this process by the spawn method, pickling the network and
the data loaders, for the Python API in a notebook, where there is no command line to run again.
Fork-based strategies are not offered: a fork of a process that has started torch's thread pools
can hang (see :mod:`tuneseek.processes`).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from tuneseek.errors import UsageError
from tuneseek.processes import watch_parent

STRATEGIES = ("auto", "ddp", "ddp_spawn")
#: ``cuda`` is read as ``gpu`` (the name the first versions of ``train`` took).
ACCELERATORS = ("auto", "cpu", "gpu")
#: Environment variables a launcher sets in the processes it starts, each a rank that is not 0 in all but the first.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


@dataclass(frozen=True)
class Layout:
    """Where a run trains: Lightning's ``accelerator``, ``devices`` per node, ``num_nodes`` and ``strategy``."""

    accelerator: str
    devices: int
    num_nodes: int
    strategy: str
    batch_size: int  # per process

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    @property
    def on_cpu(self) -> bool:
        """Whether it trains on the CPU: asked, or ``auto`` where torch sees no GPU."""
        return self.accelerator == "cpu" or (self.accelerator == "auto" and not torch.cuda.is_available())

    def trainer_options(self) -> dict:
        """The keyword arguments of ``lightning.Trainer`` that say this."""
        return {
            "accelerator": self.accelerator,
            "devices": self.devices,
            "num_nodes": self.num_nodes,
            "strategy": self.strategy,
        }


def layout(
    accelerator: str = "auto", *, devices: int = 1, num_nodes: int = 1, strategy: str = "auto", batch_size: int = 1
) -> Layout:
    """Check the settings against this machine and this torch, and say how Lightning is to run them.

    ``strategy="auto"`` is one process for one device, else ``ddp``. Raises :class:`UsageError`,
    one line, for what cannot work: an unknown name, a count below 1, a GPU torch cannot see (or
    fewer GPUs than ``devices``), a torch built without ``torch.distributed``, ``ddp`` from an
    interactive session, a ``batch_size`` that does not divide among the processes.
    """
    accelerator = "gpu" if accelerator == "cuda" else accelerator
    if accelerator not in ACCELERATORS:
        raise UsageError(f"unknown accelerator {accelerator!r}; known: {', '.join(ACCELERATORS)}")
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if devices < 1 or num_nodes < 1:
        raise UsageError(f"devices and nodes must be 1 or more, not devices={devices}, num_nodes={num_nodes}")
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if accelerator == "gpu" and gpus == 0:
        build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
        raise UsageError(
            f"--accelerator gpu: torch sees no CUDA GPU (torch {torch.__version__}, {build}); "
            "train on the CPU with --accelerator cpu, or install a CUDA build of torch"
        )
    on_gpus = accelerator == "gpu" or (accelerator == "auto" and gpus > 0)
    if on_gpus and devices > gpus:
        raise UsageError(f"--devices {devices}: torch sees {gpus} GPU(s) on this machine")
    world = devices * num_nodes
    if strategy == "auto":
        strategy = "ddp" if world > 1 else "auto"
    if strategy != "auto" and not torch.distributed.is_available():
        raise UsageError(
            f"strategy {strategy} needs torch.distributed, which this torch ({torch.__version__}) was built without"
        )
    if strategy == "ddp" and _interactive() and launched_rank() == 0 and "WORLD_SIZE" not in os.environ:
        raise UsageError(
            "strategy ddp starts its other processes by running this command line again, which an interactive "
            "session or a notebook does not have: use strategy ddp_spawn here"
        )
    started = _torchrun_processes()
    if started is not None and started != (devices, world):
        per_node, total = started
        raise UsageError(
            f"torchrun started {total} process(es), {per_node} per machine: give --devices {per_node} and "
            f"--num-nodes {total // max(1, per_node)} (not {devices} and {num_nodes})"
        )
    if batch_size < 1 or batch_size % world:
        raise UsageError(
            f"the batch of {batch_size} is shared out among {world} processes: choose a multiple of {world}"
        )
    return Layout(
        accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy=strategy, batch_size=batch_size // world
    )


def _torchrun_processes() -> tuple[int, int] | None:
    """``(processes per machine, processes in all)`` when torchrun (torch.distributed.run) started this process."""
    if not (torch.distributed.is_available() and torch.distributed.is_torchelastic_launched()):
        return None
    try:
        return int(os.environ["LOCAL_WORLD_SIZE"]), int(os.environ["WORLD_SIZE"])
    except (KeyError, ValueError):
        return None


def _interactive() -> bool:
    import __main__

    return hasattr(sys, "ps1") or bool(sys.flags.interactive) or not hasattr(__main__, "__file__")


def launched_rank() -> int:
    """0 in the run's first process (or when nothing says otherwise), else a rank above 0.

    Read from the environment that the launcher of the process set (Lightning's ``ddp`` and
    torchrun: ``LOCAL_RANK``, ``NODE_RANK``, ``RANK``; SLURM: ``SLURM_PROCID``), so it is known
    before Lightning sets up the process group.
    """
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "0").strip() or "0"
        try:
            rank = int(value)
        except ValueError:
            continue
        if rank:
            return rank
    return 0


def one_process_sampler(dataset, where: Layout, *, seed: int):
    """The training sampler of a one-process run: the order a DDP run's processes share out (see above), the
    permutation of epoch ``e`` seeded by ``seed + e`` (Lightning tells the sampler the epoch, a resumed run's
    included); ``None`` on more than one process, where Lightning puts in the ``DistributedSampler`` itself."""
    if where.world_size > 1:
        return None
    return torch.utils.data.DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=seed)


def end_with_parent() -> None:
    """When a launcher on this machine started this process beside the first of its node (``LOCAL_RANK``
    above 0: Lightning's ``ddp``, torchrun), end it as soon as that launcher is gone. On Linux the kernel
    sends SIGKILL (``PR_SET_PDEATHSIG``); a thread watches too. (The first process of another node, which
    a person or a scheduler started, is left alone: its parent may be a shell that has gone.)"""
    try:
        local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0)
    except ValueError:
        return
    parent = os.getppid()
    if local_rank <= 0 or parent <= 1:
        return
    watch_parent(parent)


def end_started(trainer) -> None:
    """Kill the processes that this process started for the run (strategy ``ddp``), if any still run."""
    launcher = getattr(getattr(trainer, "strategy", None), "launcher", None)
    for process in getattr(launcher, "procs", None) or []:
        if isinstance(process, subprocess.Popen) and process.poll() is None:
            process.kill()


def connection_errors() -> tuple[type[BaseException], ...]:
    """What torch raises when the processes of a run cannot meet (a port in use, an address not reached)."""
    return (torch.distributed.DistError,) if torch.distributed.is_available() else ()


class Indexed(torch.utils.data.Dataset):
    """``dataset``'s items with their number last: ``(*item, i)``, so that validation rows gathered from every
    process can be put back in order and the items a sampler repeated counted once (:func:`unique_rows`)."""

    def __init__(self, dataset: torch.utils.data.Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        return (*self.dataset[i], torch.tensor(i))


def gather_rows(module, rows: torch.Tensor) -> torch.Tensor:
    """``rows`` of every process of ``module``'s run, one after the other (rank 0's first); ``rows`` itself in a
    one-process run. The processes may hold different numbers of rows; every process gets the same result."""
    if module.trainer.world_size <= 1 or not torch.distributed.is_initialized():
        return rows
    dist, world = torch.distributed, torch.distributed.get_world_size()
    size = torch.tensor([len(rows)], device=rows.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    sizes = [int(n) for n in sizes]
    longest = max(sizes)
    if len(rows) < longest:  # all_gather takes tensors of one shape
        rows = torch.cat([rows, rows.new_zeros((longest - len(rows), *rows.shape[1:]))])
    gathered = [torch.empty_like(rows) for _ in range(world)]
    dist.all_gather(gathered, rows.contiguous())
    return torch.cat([g[:n] for g, n in zip(gathered, sizes)])


def unique_rows(index: torch.Tensor) -> torch.Tensor:
    """Positions in ``index`` (item numbers, possibly repeated) of each item's first row, in item order."""
    _, first = np.unique(index.detach().cpu().numpy(), return_index=True)
    return torch.from_numpy(first).to(index.device)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank`` of a run seeded ``seed``: ``seed`` itself for rank 0, distinct for the others."""
    return seed if rank == 0 else int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def quiet_lightning() -> None:
    """Keep Lightning's banner lines (accelerators found, tips, processes registered) and known deprecation chatter
    off the terminal."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")  # a resumed run
