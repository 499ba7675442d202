#!/usr/bin/python3
"""Converts a PyTorch checkpoint (.pth, .pt) to a safetensors file that shears can load.

    /usr/bin/python3 tools/pth_to_safetensors.py IN.pth OUT.safetensors [--key KEY]

IN.pth is read with torch.load(map_location="cpu", weights_only=True) where the installed torch has
weights_only; a file that torch 1.13's weights-only reader refuses (it knows no pickled float) is read
again by an unpickler that builds tensors and plain containers only, so no code in the file runs
either way. It may hold the state_dict itself or wrap it under "state_dict", "model",
"model_state_dict" or "module" (or under KEY). Names are kept as they are: shears strips "module."
and "_orig_mod." itself. Entries that are not tensors (e.g. a step counter inside the state_dict)
are named on stderr and left out; tensors that share storage are each written in full. The only
metadata is {"format": "pt"}, what PyTorch-made safetensors files carry. Dtypes: F64 F32 F16 BF16
I64 I32 I16 I8 U8 BOOL. Exits 1 with a one-line message on a file it cannot convert.

Needs Debian's python3-torch only: the writer is plain Python (Debian has no safetensors module),
importable as
    from pth_to_safetensors import save
    save("out.safetensors", model.state_dict())
"""
import argparse
import collections
import inspect
import io
import json
import os
import pickle
import struct
import sys
import tempfile
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from safetensors_np import RANK  # noqa: E402

WRAPPERS = ("state_dict", "model", "model_state_dict", "module")
DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
          torch.bool: "BOOL"}
# numpy has no bfloat16: its bits go out through a 16-bit integer view of the same element size.
BIT_VIEWS = {torch.bfloat16: torch.int16}


class Failure(Exception):
    """An expected error: printed as one line, exit code 1, no traceback."""


def tensor_bytes(t):
    t = t.detach().cpu().contiguous()  # a view or a shared slice is written as its own copy
    t = t.view(BIT_VIEWS.get(t.dtype, t.dtype))
    array = t.numpy()
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def save(path, tensors, metadata=None):
    """Writes {name: torch.Tensor} to path atomically (a temporary file beside it, then a rename).
    Tensors are laid out in the order shears and safetensors_np.save use (by dtype, then name)."""
    metadata = {"format": "pt"} if metadata is None else metadata
    for name, t in tensors.items():
        if t.dtype not in DTYPES:
            raise Failure(f"{path}: tensor {name!r} has dtype {t.dtype}, which safetensors here cannot "
                          f"hold (expected one of {', '.join(DTYPES.values())})")
    order = sorted(tensors, key=lambda name: (-RANK.index(DTYPES[tensors[name].dtype]), name))
    header = {"__metadata__": dict(metadata)} if metadata else {}
    chunks, offset = [], 0
    for name in order:
        chunks.append(tensor_bytes(tensors[name]))
        header[name] = {"dtype": DTYPES[tensors[name].dtype], "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(chunks[-1])]}
        offset += len(chunks[-1])
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # the tensor data then starts 8-aligned
    folder = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for chunk in chunks:
                f.write(chunk)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # mkstemp makes it 0600; give it an ordinary file's mode
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


class StandIn:
    """What the fallback unpickler builds for any class a checkpoint names besides tensors and
    plain containers (argparse.Namespace, numpy scalars, a whole nn.Module): it keeps the arguments
    and state it is given and runs none of the named code."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state


class RestrictedUnpickler(pickle.Unpickler):
    """pickle's full opcode set with an allow-list of globals (tensor rebuilders, storage classes,
    dtypes, OrderedDict); any other global becomes an inert StandIn subclass named after it."""
    ALLOWED = {f"{g.__module__}.{g.__name__}": g for g in [
        collections.OrderedDict, torch.Size, torch._utils._rebuild_tensor, torch._utils._rebuild_tensor_v2,
        torch._utils._rebuild_parameter, *torch._storage_classes]}
    ALLOWED.update({str(t): t for t in vars(torch).values() if isinstance(t, torch.dtype)})

    def find_class(self, module, name):
        if f"{module}.{name}" in self.ALLOWED:
            return self.ALLOWED[f"{module}.{name}"]
        return type(f"{module}.{name}", (StandIn,), {})


def read_restricted(path):
    """Reads torch.save's zip layout (<record>/data.pkl pickling the object, <record>/data/<key> the
    raw bytes of each storage) with RestrictedUnpickler; by hand, because torch 1.13's torch.load
    ignores its pickle_module argument unless weights_only is set, and then uses its own unpickler."""
    with zipfile.ZipFile(path) as archive:
        pickled = next((name for name in archive.namelist() if name.endswith("/data.pkl")), None)
        if pickled is None:
            raise Failure(f"{path}: a zip file without the data.pkl of torch.save's format")
        record, storages = pickled[:-len("data.pkl")], {}

        def storage(persistent_id):  # ("storage", storage class, key, device, element count)
            _, storage_class, key, _, _ = persistent_id
            if key not in storages:  # tensors sharing a storage share it here too
                raw, dtype = bytearray(archive.read(f"{record}data/{key}")), storage_class.dtype
                flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
                storages[key] = flat.storage()
            return storages[key]

        unpickler = RestrictedUnpickler(io.BytesIO(archive.read(pickled)), encoding="utf-8")
        unpickler.persistent_load = storage
        return unpickler.load()


def load_checkpoint(path):
    """torch.load with weights_only=True. torch 1.13's weights-only unpickler knows too few pickle
    opcodes (no float: a saved learning rate or accuracy sinks the whole file), so a zip-format file
    it refuses is read again by read_restricted, which is as safe and reads any pickle."""
    try:
        if "weights_only" not in inspect.signature(torch.load).parameters:
            return read_restricted(path)
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            if "Weights only load failed" not in str(e):
                raise
            if not zipfile.is_zipfile(path):
                reason = str(e).rpartition("error: ")[2]
                raise Failure(f"{path}: not in torch.save's zip format, and torch's weights-only reader "
                              f"refuses it ({reason}); re-save it with torch.save from PyTorch >= 1.6")
            return read_restricted(path)
    except FileNotFoundError:
        raise Failure(f"{path}: no such file")
    except Failure:
        raise
    except Exception as e:  # torch.load reports a bad file through many exception types
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Failure(f"{path}: cannot be read as a PyTorch checkpoint: {first}")


def kind(obj):
    if isinstance(obj, StandIn):
        return f"pickled {type(obj).__name__} object"
    return type(obj).__name__


def find_state_dict(path, obj, key=None):
    """The dict of tensors inside what torch.load returned."""
    if not isinstance(obj, dict):
        hint = ": save model.state_dict() instead" if isinstance(obj, StandIn) else ""
        raise Failure(f"{path}: no state_dict found: the checkpoint holds a {kind(obj)}, expected a dict "
                      f"of tensors{hint}")
    top = ", ".join(repr(k) for k in list(obj)[:20]) + (", ..." if len(obj) > 20 else "")
    if key is not None:
        if key not in obj:
            raise Failure(f"{path}: no key {key!r}: top-level keys are {top}")
        if not isinstance(obj[key], dict):
            raise Failure(f"{path}: {key!r} holds a {kind(obj[key])}, expected a dict of tensors")
        return obj[key]
    # A state_dict is flat, so a dict under one of these names is a wrapper, never a weight.
    for wrapper in WRAPPERS:
        if isinstance(obj.get(wrapper), dict):
            return obj[wrapper]
    if any(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    for wrapper in WRAPPERS:
        if isinstance(obj.get(wrapper), StandIn):
            raise Failure(f"{path}: no state_dict found: {wrapper!r} holds a {kind(obj[wrapper])}; save "
                          f"model.state_dict() instead")
    raise Failure(f"{path}: no state_dict found: top-level keys are {top or '(none)'}; expected tensors "
                  f"or a dict under one of {', '.join(map(repr, WRAPPERS))} (or give --key)")


def main():
    parser = argparse.ArgumentParser(description="PyTorch checkpoint -> safetensors for shears")
    parser.add_argument("input", metavar="IN.pth")
    parser.add_argument("output", metavar="OUT.safetensors")
    parser.add_argument("--key", help="the top-level key that holds the state_dict")
    args = parser.parse_args()
    try:
        state = find_state_dict(args.input, load_checkpoint(args.input), args.key)
        tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
        skipped = [str(k) for k, v in state.items() if not isinstance(v, torch.Tensor)]
        if skipped:
            print(f"{args.input}: skipped {len(skipped)} entries that are not tensors: {', '.join(skipped)}",
                  file=sys.stderr)
        if not tensors:
            raise Failure(f"{args.input}: the state_dict holds no tensors")
        save(args.output, tensors)
    except Failure as e:
        sys.exit(str(e))
    except OSError as e:
        sys.exit(f"{args.output}: cannot write: {e.strerror or e}")
    size = sum(t.numel() for t in tensors.values())
    print(f"{args.output}: {len(tensors)} tensors, {size} values, from {args.input}")


if __name__ == "__main__":
    main()
