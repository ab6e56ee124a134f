"""Format backends. Qt-free; frameworks are imported lazily inside each backend.

Import this package freely: it loads neither Qt nor torch nor TensorFlow.
"""

from tensor_inspector.backends.base import (
    Backend,
    CorruptFile,
    FeedSpec,
    InspectorError,
    MissingFramework,
    Node,
    NodeKind,
    NodeNotFound,
    NotEvaluable,
    Source,
    TrustRequired,
    UnsupportedFormat,
)
from tensor_inspector.backends.registry import (
    available_backends,
    detect,
    get_backend,
    open_path,
    supported_formats,
)

__all__ = [
    "Backend",
    "CorruptFile",
    "FeedSpec",
    "InspectorError",
    "MissingFramework",
    "Node",
    "NodeKind",
    "NodeNotFound",
    "NotEvaluable",
    "Source",
    "TrustRequired",
    "UnsupportedFormat",
    "available_backends",
    "detect",
    "get_backend",
    "open_path",
    "supported_formats",
]
