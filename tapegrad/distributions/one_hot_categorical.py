"""``torch.distributions.one_hot_categorical``."""

from __future__ import annotations

from ..tensor import Size, Tensor
from .categorical import Categorical
from .distribution import _SCALAR, Distribution


class OneHotCategorical(Distribution):
    """A ``Categorical`` whose draws are one-hot vectors of the parameter's float dtype (event
    shape: the number of categories); give ``probs`` or ``logits``. Follows
    ``torch.distributions.OneHotCategorical``."""

    arg_constraints = Categorical.arg_constraints

    def __init__(self, probs=None, logits=None, validate_args=None):
        self._categorical = Categorical(probs, logits, validate_args=validate_args)
        parameter = self._categorical._param
        super().__init__(parameter.shape[:-1], parameter.shape[-1:], validate_args=validate_args)

    @property
    def probs(self) -> Tensor:
        return self._categorical.probs

    @property
    def logits(self) -> Tensor:
        return self._categorical.logits

    @property
    def param_shape(self) -> Size:
        return self._categorical.param_shape

    @property
    def mean(self) -> Tensor:
        return self.probs

    @property
    def mode(self) -> Tensor:
        from ..nn.functional import one_hot

        return one_hot(self.probs.argmax(-1), self._categorical._num_events).to(self.probs.dtype)

    @property
    def variance(self) -> Tensor:
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape=_SCALAR) -> Tensor:
        from ..nn.functional import one_hot

        indices = self._categorical.sample(sample_shape)
        return one_hot(indices, self._categorical._num_events).to(self.probs.dtype)

    def log_prob(self, value) -> Tensor:
        value = self._checked_value(value)
        data = value._data
        self._check_support(value, ((data == 0) | (data == 1)).all() and (data.sum(-1) == 1).all(), "OneHot()")
        return self._categorical.log_prob(value.max(-1)[1])

    def entropy(self) -> Tensor:
        return self._categorical.entropy()

    def __repr__(self) -> str:  # (its parameters are properties: PyTorch's repr shows none)
        return f"{type(self).__name__}()"
