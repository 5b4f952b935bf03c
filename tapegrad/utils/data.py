"""``torch.utils.data``: datasets, samplers and the DataLoader a PyTorch training loop iterates.

Loading runs in the calling process: ``num_workers`` is accepted and the batches are the same
as PyTorch's with ``num_workers=0`` (worker processes would only overlap loading with compute,
and tapegrad's datasets are in memory). Shuffling draws from numpy's Generator through
``tapegrad.Generator``: a seeded run repeats itself, but not PyTorch's order.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from .. import _dtypes, _factories
from .._views import stack
from ..tensor import Tensor

__all__ = [
    "BatchSampler",
    "ConcatDataset",
    "DataLoader",
    "Dataset",
    "IterableDataset",
    "RandomSampler",
    "Sampler",
    "SequentialSampler",
    "WeightedRandomSampler",
    "get_worker_info",
    "Subset",
    "SubsetRandomSampler",
    "TensorDataset",
    "default_collate",
    "default_convert",
    "random_split",
]


class Dataset:
    """A map-style dataset: ``dataset[index]`` is one sample; subclasses define ``__getitem__``
    and usually ``__len__``. ``a + b`` concatenates; follows ``torch.utils.data.Dataset``."""

    def __getitem__(self, index):
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset read by iterating it (``__iter__``), as ``torch.utils.data.IterableDataset``."""

    def __iter__(self):
        raise NotImplementedError("Subclasses of IterableDataset should implement __iter__.")


class TensorDataset(Dataset):
    """Samples are the ``index``-th rows of each tensor (all of one length along dimension 0).

    Raises ``AssertionError("Size mismatch between tensors")`` as PyTorch does otherwise.

    >>> import tapegrad as tg
    >>> from tapegrad.utils.data import TensorDataset
    >>> data = TensorDataset(tg.arange(3), tg.arange(3) * 10)
    >>> len(data), data[1]
    (3, (tensor(1), tensor(10)))
    """

    def __init__(self, *tensors: Tensor):
        if any(len(tensor) != len(tensors[0]) for tensor in tensors):
            raise AssertionError("Size mismatch between tensors")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(tensor[index] for tensor in self.tensors)

    def __len__(self) -> int:
        return len(self.tensors[0])


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order; follows ``torch.utils.data.Subset``."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, index):
        if isinstance(index, list):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """The samples of each dataset in turn; follows ``torch.utils.data.ConcatDataset``."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise AssertionError("datasets should not be an empty iterable")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]))

    def __len__(self) -> int:
        return int(self.cumulative_sizes[-1])

    def __getitem__(self, index: int):
        if index < 0:
            if -index > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            index += len(self)
        which = int(np.searchsorted(self.cumulative_sizes, index, side="right"))
        start = 0 if which == 0 else int(self.cumulative_sizes[which - 1])
        return self.datasets[which][index - start]


def random_split(dataset: Dataset, lengths, generator=None) -> list:
    """``dataset`` split into non-overlapping ``Subset``s of ``lengths`` (counts summing to its
    length, or fractions summing to 1, the remainder dealt round-robin as PyTorch does), at
    random; follows ``torch.utils.data.random_split``.

    Raises ``ValueError`` as PyTorch does when the lengths do not add up."""
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        for index, fraction in enumerate(lengths):  # ([1.5, -0.5] took the whole dataset, silently)
            if not 0 <= fraction <= 1:
                raise ValueError(f"Fraction at index {index} is not between 0 and 1")
        counts = [int(math.floor(len(dataset) * fraction)) for fraction in lengths]
        for i in range(len(dataset) - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != len(dataset):
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    order = _factories.numpy_generator(generator).permutation(len(dataset)).tolist()
    subsets, start = [], 0
    for length in lengths:
        subsets.append(Subset(dataset, order[start : start + length]))
        start += length
    return subsets


class Sampler:
    """Yields dataset indices; follows ``torch.utils.data.Sampler``."""

    def __init__(self, data_source=None):
        pass

    def __iter__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """Indices ``0 .. len(data_source) - 1`` in order."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """Indices in a random order (a new one each pass), or ``num_samples`` drawn with
    ``replacement``; follows ``torch.utils.data.RandomSampler``."""

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(self.num_samples, int) or self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={self.num_samples}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        rng = _factories.numpy_generator(self.generator)
        n = len(self.data_source)
        if self.replacement:
            return iter(rng.integers(0, n, size=self.num_samples).tolist())
        passes = [rng.permutation(n) for _ in range(-(-self.num_samples // n))]
        return iter(np.concatenate(passes)[: self.num_samples].tolist())

    def __len__(self) -> int:
        return self.num_samples


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices drawn with probabilities proportional to ``weights`` (a 1-D
    sequence), with or without ``replacement``, by ``tapegrad.multinomial``; follows
    ``torch.utils.data.WeightedRandomSampler`` (its checks and messages; the draws are
    tapegrad's generator's, not PyTorch's)."""

    def __init__(self, weights, num_samples: int, replacement: bool = True, generator=None):
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got replacement={replacement}")
        weights = _factories.as_tensor(weights, dtype=_dtypes.float64)
        if weights.dim() != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape {tuple(weights.shape)}")
        self.weights, self.num_samples, self.replacement, self.generator = weights, num_samples, replacement, generator

    def __iter__(self):
        drawn = _factories.multinomial(self.weights, self.num_samples, self.replacement, generator=self.generator)
        return iter(drawn.tolist())

    def __len__(self) -> int:
        return self.num_samples


def get_worker_info():
    """None: batches are loaded in the calling process (see the module's note), where PyTorch's
    answer is None too; follows ``torch.utils.data.get_worker_info``."""
    return None


class SubsetRandomSampler(Sampler):
    """The given ``indices`` in a random order; follows ``torch.utils.data.SubsetRandomSampler``."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator

    def __iter__(self):
        order = _factories.numpy_generator(self.generator).permutation(len(self.indices))
        return (self.indices[i] for i in order.tolist())

    def __len__(self) -> int:
        return len(self.indices)


class BatchSampler(Sampler):
    """Lists of ``batch_size`` indices from ``sampler`` (the last one shorter unless
    ``drop_last``); follows ``torch.utils.data.BatchSampler``."""

    def __init__(self, sampler, batch_size: int, drop_last: bool):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self):
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return -(-len(self.sampler) // self.batch_size)


def default_collate(batch):
    """A list of samples as one batch, as ``torch.utils.data.default_collate``: tensors and
    numpy arrays stacked along a new dimension 0, Python floats as a float64 tensor and ints as
    int64, and tuples, lists and dicts collated field by field; strings stay a list.

    Raises ``RuntimeError`` when samples' fields differ in size, as PyTorch's ``stack`` does."""
    first = batch[0]
    if isinstance(first, Tensor):
        return stack(list(batch))
    if isinstance(first, np.ndarray):
        return stack([_factories.as_tensor(np.asarray(sample)) for sample in batch])
    if isinstance(first, np.generic):
        return _factories.tensor(np.array(batch))
    if isinstance(first, bool):
        return _factories.tensor(batch)
    if isinstance(first, numbers.Integral):
        # The batch's own dtype, as PyTorch's ``tensor(batch)``: [0, 1.5] is float, not [0, 1].
        return _factories.tensor(batch)
    if isinstance(first, numbers.Real):
        return _factories.tensor(batch, dtype=_factories._dtypes.float64)
    if isinstance(first, (str, bytes)):
        return batch  # as given: a tuple of a field of tuple samples (PyTorch's zip), else the list
    if isinstance(first, Mapping):
        return type(first)({key: default_collate([sample[key] for sample in batch]) for key in first})
    if isinstance(first, tuple) and hasattr(first, "_fields"):  # a namedtuple
        return type(first)(*(default_collate(field) for field in zip(*batch)))
    if isinstance(first, Sequence):
        if any(len(sample) != len(first) for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        # A list, for tuple samples too, as PyTorch returns it: ``batch[0] = batch[0] * 2``
        # (normalising inputs in place) works on what the loader yields.
        return [default_collate(field) for field in zip(*batch)]
    raise TypeError(
        f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {type(first)}"
    )


def default_convert(data):
    """A sample as ``DataLoader(batch_size=None)`` yields it, as
    ``torch.utils.data.default_convert``: numpy arrays (of numbers) and numpy scalars become
    tensors sharing their memory where they can, tuples become lists, and dicts, namedtuples and
    lists are converted field by field; tensors, Python numbers and strings stay as they are."""
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        return data if data.dtype.kind in "USO" else _factories.as_tensor(data)
    if isinstance(data, np.generic):
        return data if isinstance(data, (np.str_, np.bytes_)) else _factories.as_tensor(data)
    if isinstance(data, Mapping):
        return type(data)({key: default_convert(value) for key, value in data.items()})
    if isinstance(data, tuple) and hasattr(data, "_fields"):  # a namedtuple
        return type(data)(*(default_convert(field) for field in data))
    if isinstance(data, tuple):
        return [default_convert(field) for field in data]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        return [default_convert(field) for field in data]
    return data


_FIXED_AFTER_INIT = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers")


class DataLoader:
    """Batches of a dataset, as ``torch.utils.data.DataLoader``: ``batch_size`` samples per batch
    (``None``: samples one by one, converted by ``default_convert``), in order or ``shuffle``d anew each epoch (from
    ``generator``), the last short batch kept unless ``drop_last``, collated by ``collate_fn``
    (``default_collate``). ``sampler`` and ``batch_sampler`` replace the order as in PyTorch.

    ``num_workers``, ``pin_memory``, ``timeout``, ``prefetch_factor``, ``persistent_workers`` and
    ``worker_init_fn`` are accepted; loading happens in this process (see the module's note).

    Raises ``ValueError`` with PyTorch's messages for contradictory options.

    >>> import tapegrad as tg
    >>> from tapegrad.utils.data import DataLoader, TensorDataset
    >>> loader = DataLoader(TensorDataset(tg.arange(5.0)), batch_size=2)
    >>> [batch for (batch,) in loader]
    [tensor([0., 1.]), tensor([2., 3.]), tensor([4.])]
    """

    def __init__(
        self,
        dataset,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler=None,
        batch_sampler=None,
        num_workers: int = 0,
        collate_fn=None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn=None,
        multiprocessing_context=None,
        generator=None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        pin_memory_device: str = "",
        in_order: bool = True,
    ):
        if isinstance(dataset, IterableDataset):  # its order is its own: PyTorch refuses these
            for option, value in (("shuffle", shuffle), ("sampler", sampler), ("batch_sampler", batch_sampler)):
                if value not in (None, False):
                    raise ValueError(
                        f"DataLoader with IterableDataset: expected unspecified {option} option, but got "
                        f"{option}={value}"
                    )
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last"
                )
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")
        self.dataset = dataset
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.generator = generator
        self.batch_size = batch_size
        self.drop_last = drop_last
        self._iterable = isinstance(dataset, IterableDataset)
        if sampler is None and not self._iterable:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        self.sampler = sampler
        if batch_size is not None and batch_sampler is None and not self._iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_sampler = batch_sampler
        self.collate_fn = (
            collate_fn if collate_fn is not None else (default_collate if self._auto_batch else default_convert)
        )
        self._initialized = True

    def __setattr__(self, name: str, value) -> None:
        # PyTorch's: the batches are made from these at construction (a batch_size set later was
        # silently ignored)
        if self.__dict__.get("_initialized") and name in _FIXED_AFTER_INIT:
            raise ValueError(f"{name} attribute should not be set after {type(self).__name__} is initialized")
        super().__setattr__(name, value)

    @property
    def _auto_batch(self) -> bool:
        return self.batch_size is not None or self.batch_sampler is not None

    def __iter__(self):
        if self._iterable:
            return self._iterate_stream()
        if self.batch_sampler is not None:
            return (self.collate_fn([self.dataset[i] for i in indices]) for indices in self.batch_sampler)
        return (self.collate_fn(self.dataset[i]) for i in self.sampler)

    def _iterate_stream(self):
        if not self._auto_batch:
            yield from (self.collate_fn(sample) for sample in self.dataset)
            return
        batch = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)

    def __len__(self) -> int:
        if self._iterable:
            length = len(self.dataset)
            if self.batch_size is None:
                return length
            return length // self.batch_size if self.drop_last else -(-length // self.batch_size)
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)
