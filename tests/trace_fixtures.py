"""Small models whose run produces NaN at one known op and passes it on (trace tests).

Each builder takes ``nan``: True makes the known op see an input outside its domain
(log or sqrt of a negative), False keeps every value finite, with the same graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TORCH_PRODUCER = "graph/log"
TF2_PRODUCER = "serving_default/StatefulPartitionedCall/lg:0"
TF1_PRODUCER = "serving_default/root:0"
# TF feeds: the weights are fixed, the input decides whether log/sqrt sees a negative.
TF2_FEEDS = {True: np.array([[1.0, -1.0]], np.float32), False: np.array([[1.0, 1.0]], np.float32)}
TF1_FEEDS = {True: np.array([1.0, 2.0], np.float32), False: np.array([-1.0, -2.0], np.float32)}


def torch_program(directory: Path, nan: bool) -> Path:
    """linear -> sub -> log -> mul -> relu -> add, exported with example inputs (ones)."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.lin = torch.nn.Linear(3, 4)
            self.offset = 100.0 if nan else -100.0  # log(h - 100) of a small h is NaN

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.lin(x)
            y = torch.log(h - self.offset)
            return torch.relu(y * 2.0) + 1.0

    program = torch.export.export(Net(), (torch.ones(2, 3),))
    path = directory / ("nan.pt2" if nan else "finite.pt2")
    torch.export.save(program, str(path))
    return path


def tf2_saved_model(directory: Path) -> Path:
    """serving_default: relu(3 * log(x @ w)) + 1; a second signature "double": 2 * x."""
    import tensorflow as tf

    class Net(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(np.array([[1.0, -2.0], [0.5, 3.0]], np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def serve(self, x):
            h = tf.matmul(x, self.w, name="mm")
            y = tf.nn.relu(tf.math.log(h, name="lg") * 3.0, name="act") + 1.0
            return {"y": y}

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def double(self, x):
            return {"z": tf.multiply(x, 2.0, name="twice")}

    net = Net()
    out = directory / "trace_tf2"
    tf.saved_model.save(net, str(out), signatures={"serving_default": net.serve, "double": net.double})
    return out


def tf1_saved_model(directory: Path) -> Path:
    """TF1 SavedModelBuilder: y = 2 * sqrt(a * x) + 1 with a = -3."""
    import tensorflow as tf

    out = directory / "trace_tf1"
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        a = tf.compat.v1.get_variable("a", initializer=np.float32(-3.0), use_resource=True)
        root = tf.sqrt(tf.multiply(a, x, name="ax"), name="root")
        y = tf.add(root * 2.0, 1.0, name="y")
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(str(out))
            signature = tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y})
            builder.add_meta_graph_and_variables(
                sess, ["serve"], signature_def_map={"serving_default": signature}
            )
            builder.save()
    return out
