"""The exceptions weightsync raises.

Every error of the C++ core (``weightsync::Error``) arrives as the subclass of
:class:`WeightsyncError` that matches its category, with the category's name in
``.code``. The Python layer raises the same classes (e.g. a refused tensor is an
:class:`InvalidArgumentError` naming it). Some classes also derive from the
builtin exception with the same meaning, so generic handlers keep working:

=========================  =====================  =====================================
class                      also a                 raised when
=========================  =====================  =====================================
``InvalidArgumentError``   ``ValueError``         bad input: tensor, shape, dtype, name
``NotFoundError``          ``LookupError``        unknown layout, tensor, key or peer
``MismatchError``                                 two sides disagree (layout, sizes)
``UnsupportedError``                              valid, but not in this build/backend
``TimeoutError``           ``TimeoutError``       a wait ran past its deadline
``PeerLostError``          ``ConnectionError``    another agent or the coordinator failed
``TransportError``                                a data-plane operation failed
``ProtocolError``                                 out-of-order versions, bad messages
``IoError``                ``OSError``            a system call failed
``CorruptionError``                               bytes verified and found wrong
``UnauthenticatedError``   ``PermissionError``    no valid MAC of the job secret
``InternalError``                                 a broken invariant inside weightsync
=========================  =====================  =====================================
"""

from ._core import (
    CorruptionError,
    InternalError,
    InvalidArgumentError,
    IoError,
    MismatchError,
    NotFoundError,
    PeerLostError,
    ProtocolError,
    TimeoutError,
    TransportError,
    UnauthenticatedError,
    UnsupportedError,
    WeightsyncError,
)

__all__ = [
    "CorruptionError",
    "InternalError",
    "InvalidArgumentError",
    "IoError",
    "MismatchError",
    "NotFoundError",
    "PeerLostError",
    "ProtocolError",
    "TimeoutError",
    "TransportError",
    "UnauthenticatedError",
    "UnsupportedError",
    "WeightsyncError",
]
