"""The swap model on the live path: ONE onnxruntime session factory and a thin, thread-safe ``Swapper`` around it.

Provider choice ("auto"): TensorRT / CUDA only when they really run, else CPU, reported in one line (the factory
returns the line, ``Swapper.provider_report`` keeps it; the caller says it once). The
onnxruntime-gpu wheel lists CUDA and TensorRT even on a machine with no NVIDIA driver; asking for them there makes
onnxruntime print several red lines and silently fall back to CPU. So we first check for a driver and a device
(libcuda, cuDeviceGetCount) and only then try the GPU providers, with onnxruntime's own console output captured, and
finally read back which providers the session really uses.

Loads swapcam ONNX files (``in_face`` NCHW RGB -> ``out_face`` + ``out_mask``) and DeepFaceLab/DeepFaceLive DFM files
(``in_face:0`` NHWC BGR -> ``out_celeb_face:0``; blend mask ``out_celeb_face_mask:0`` x ``out_face_mask:0`` as in
DeepFaceLive's merger; ``morph_value:0`` fed the caller's morph factor). A file that follows neither contract
raises ContractError naming the tensors it has (the checks live in :func:`models.contract.check_session`).
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from models import contract
from models.contract import ModelInfo
from realtime.errors import ContractError, SwapcamError
from realtime.native import captured_native_output
from realtime.types import Image, Mask

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger("swapcam.swapper")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
_SHORT = {CPU: "cpu", CUDA: "cuda", TENSORRT: "tensorrt"}
PROVIDER_CHOICES = ("auto", "cpu", "cuda", "tensorrt")


def nvidia_device_count() -> int:
    """Number of CUDA devices the driver reports; 0 when there is no driver (checked without onnxruntime's spew)."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1" if os.name != "nt" else "nvcuda.dll")
    except OSError:
        return 0
    try:
        if libcuda.cuInit(0) != 0:
            return 0
        count = ctypes.c_int(0)
        if libcuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return int(count.value)
    except AttributeError:
        return 0


def _requested_providers(providers: str | Sequence[str]) -> tuple[list[str], str]:
    """Expand a provider request into an onnxruntime provider list and a reason used in the one-line report."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if not isinstance(providers, str):
        wanted = list(providers)
        unknown = [p for p in wanted if p not in available]
        if unknown:
            raise SwapcamError(f"providers {unknown} are not in this onnxruntime build (available: {available})")
        return wanted, "as requested"
    choice = providers.lower()
    if choice not in PROVIDER_CHOICES:
        raise SwapcamError(f"providers={providers!r}; choose from {', '.join(PROVIDER_CHOICES)}")
    if choice == "cpu":
        return [CPU], "as requested"
    gpu_listed = [p for p in (TENSORRT, CUDA) if p in available]
    if choice in ("cuda", "tensorrt"):
        name = CUDA if choice == "cuda" else TENSORRT
        if name not in available:
            raise SwapcamError(
                f"--providers {choice}: this onnxruntime ({ort.__version__}) has no {name}; install onnxruntime-gpu"
            )
        if nvidia_device_count() == 0:
            raise SwapcamError(f"--providers {choice}: no NVIDIA driver/GPU found (libcuda could not report a device)")
        return ([TENSORRT, CUDA, CPU] if name == TENSORRT else [CUDA, CPU]), "as requested"
    if not gpu_listed:
        return [CPU], "no GPU provider in this onnxruntime build"
    if nvidia_device_count() == 0:
        return [CPU], f"{'/'.join(_SHORT[p] for p in gpu_listed)} listed by onnxruntime but no NVIDIA driver/GPU found"
    # TensorRT needs its own libraries (libnvinfer); without them onnxruntime falls back, which we detect below.
    return gpu_listed + [CPU], "GPU found"


def session_options(threads: int | None = None):
    """Session options for the live path: a fixed small thread pool that does not spin (the other stages need the
    cores between inferences), all graph optimisations, sequential execution."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    if threads is not None:
        if int(threads) < 1:
            raise SwapcamError(f"threads={threads}, expected >= 1")
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    # Spinning worker threads burn a core while waiting; on 2 cores that core belongs to capture and landmarks.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def create_session(
    path: str | os.PathLike, providers: str | Sequence[str] = "auto", threads: int | None = None
) -> tuple[ort.InferenceSession, str]:
    """THE onnxruntime session factory of swapcam. Returns ``(session, report)``: an ``onnxruntime.InferenceSession``
    and one line saying which provider really runs it and why (the caller decides where and how often to say it).

    ``providers``: "auto" (TensorRT/CUDA when they really run, else CPU), "cpu", "cuda", "tensorrt", or an explicit
    onnxruntime provider list. Raises SwapcamError for a missing file and ContractError for a file onnxruntime
    cannot parse.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.exists():
        raise SwapcamError(f"model file {path} does not exist")
    if not path.is_file():
        raise SwapcamError(f"model path {path} is not a file")
    wanted, reason = _requested_providers(providers)
    opts = session_options(threads)
    gpu_attempt = any(p != CPU for p in wanted)
    try:
        if gpu_attempt:
            with captured_native_output() as native_lines:
                session = ort.InferenceSession(str(path), sess_options=opts, providers=wanted)
            for line in native_lines:
                log.debug("onnxruntime: %s", line.strip())
        else:
            session = ort.InferenceSession(str(path), sess_options=opts, providers=wanted)
    except Exception as exc:  # onnxruntime raises several private exception types for unreadable files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if any(word in first for word in ("Protobuf", "protobuf", "parsing", "Load model", "ModelProto")):
            raise ContractError(f"{path}: not a readable ONNX/DFM model ({first[:200]})") from None
        raise ContractError(f"{path}: onnxruntime cannot load it ({first[:200]})") from None
    used = session.get_providers()
    main = used[0] if used else CPU
    if gpu_attempt and main == CPU:
        gpus = "/".join(_SHORT.get(p, p) for p in wanted if p != CPU)
        reason = f"{gpus} could not start (missing CUDA/cuDNN/TensorRT libraries?)"
    elif gpu_attempt and wanted[0] == TENSORRT and main != TENSORRT:
        reason = "TensorRT libraries missing, CUDA runs"
    if main == CPU:
        n = opts.intra_op_num_threads or os.cpu_count()
        report = f"onnxruntime {ort.__version__}: running on CPU ({n} threads) - {reason}"
    else:
        report = f"onnxruntime {ort.__version__}: running on {_SHORT.get(main, main).upper()} ({reason})"
    return session, report


class Swapper:
    """A loaded swap model: ``swap(crops) -> (faces, masks)`` with every crop of a frame in one ``session.run``.

    Thread-safe: onnxruntime's ``InferenceSession.run`` may be called from several threads, and the instance holds
    no per-call state, so one Swapper serves every stream/peer.
    """

    def __init__(
        self, path: str | os.PathLike, providers: str | Sequence[str] = "auto", threads: int | None = None
    ) -> None:
        self.path = Path(path)
        self.session, self.provider_report = create_session(self.path, providers, threads)
        self.provider = self.session.get_providers()[0]
        inputs = {i.name: list(i.shape) for i in self.session.get_inputs()}
        outputs = {o.name: list(o.shape) for o in self.session.get_outputs()}
        meta = dict(self.session.get_modelmeta().custom_metadata_map or {})
        self.info: ModelInfo = contract.check_session(inputs, outputs, meta, str(self.path))
        self.kind = self.info.format
        if self.kind == "dfm" and contract.META_PREFIX + "size" not in meta:
            log.warning(
                "%s: DFM without swapcam metadata: face size %d from the input shape, DeepFaceLive's default "
                "framing (coverage %.2f here, %.1f in DeepFaceLive); --coverage overrides it",
                self.path.name,
                self.info.size,
                self.info.coverage,
                contract.DFL_DEFAULT_COVERAGE,
            )
        # DeepFaceLive's morph input (AMP models): the morph factor, fed with every batch (see swap()).
        self._morph_shape: list[int] | None = None
        if contract.DFM_MORPH_INPUT in inputs and len(inputs) == 2:
            self._morph_shape = [d if isinstance(d, int) else 1 for d in inputs.pop(contract.DFM_MORPH_INPUT)]
        # Identity re-centring (swapcam graphs exported since): a latent shift in, each face's latent code out.
        # latent_target: the drawn identity's mean code as an array, converted once (the live loop uses it per frame)
        self.latent_target = np.asarray(self.info.latent_target, np.float64)
        self.latent_spread = float(self.info.latent_spread)  # 0: unknown (every face is moved)
        self.latent_size = len(self.latent_target) if inputs.pop(contract.LATENT_SHIFT_INPUT, None) is not None else 0
        self.input_name = next(iter(inputs))
        self.output_names = list(contract.output_names(self.kind))
        if self.kind == "dfm":  # the camera face's own mask, multiplied into the blend mask
            self.output_names.append(contract.DFM_OUT_MASK)
        if self.latent_size:
            self.output_names.append(contract.LATENT_OUTPUT)
        self._use_iobinding = self.provider in (CUDA, TENSORRT)

    @property
    def size(self) -> int:
        return self.info.size

    def _to_tensor(self, crops: Sequence[Image]) -> np.ndarray:
        s = self.info.size
        for i, crop in enumerate(crops):
            if not isinstance(crop, np.ndarray) or crop.dtype != np.uint8 or crop.shape != (s, s, 3):
                got = (type(crop).__name__, getattr(crop, "dtype", None), getattr(crop, "shape", None))
                raise ValueError(f"crop {i} is {got}, expected a {s}x{s}x3 uint8 BGR array for {self.path.name}")
        batch = np.stack(crops)  # N,S,S,3 BGR uint8
        if self.kind == "swapcam":
            # RGB, NCHW, [0, 1]: reversing the channel axis and transposing in one copy.
            return np.ascontiguousarray(batch[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32) * np.float32(1 / 255)
        return batch.astype(np.float32) * np.float32(1 / 255)  # DFM: NHWC BGR [0, 1]

    @property
    def has_morph(self) -> bool:
        """Whether the model takes DeepFaceLive's ``morph_value:0`` (the ``morph`` of :meth:`swap` matters)."""
        return self._morph_shape is not None

    @property
    def recentres(self) -> bool:
        """Whether the model takes a latent shift and returns latent codes (identity re-centring, see
        :meth:`swap_codes`)."""
        return self.latent_size > 0

    def _run(self, tensor: np.ndarray, morph: float, shifts: np.ndarray | None = None) -> list[np.ndarray]:
        extra = {}
        if self._morph_shape is not None:
            extra[contract.DFM_MORPH_INPUT] = np.full(self._morph_shape, morph, np.float32)
        if self.latent_size:
            if shifts is None:
                shifts = np.zeros((len(tensor), self.latent_size), np.float32)
            extra[contract.LATENT_SHIFT_INPUT] = np.ascontiguousarray(shifts, dtype=np.float32)
        if not self._use_iobinding:
            return self.session.run(self.output_names, {self.input_name: tensor, **extra})
        # On CUDA, IO binding copies the input once and lets onnxruntime allocate the outputs on the device.
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_name, tensor)
        for name, value in extra.items():
            binding.bind_cpu_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, "cuda")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def swap(self, crops: Sequence[Image], morph: float = contract.DFM_DEFAULT_MORPH) -> tuple[list[Image], list[Mask]]:
        """Swap aligned SxS BGR uint8 crops. Returns (faces: SxS BGR uint8, masks: SxS float32 in [0, 1]).

        ``morph`` (0..1): fed to a DFM's ``morph_value:0`` (DeepFaceLive AMP models: 1 = all the way to the
        celebrity); models without that input ignore it. A DFM's mask is the swapped face's mask times the camera
        face's (``out_face_mask:0``), as DeepFaceLive's merger blends. A re-centring model gets no shift here (the
        plain swap); see :meth:`swap_codes`.
        """
        faces, masks, _ = self.swap_codes(crops, morph)
        return faces, masks

    def swap_codes(
        self, crops: Sequence[Image], morph: float = contract.DFM_DEFAULT_MORPH, shifts: np.ndarray | None = None
    ) -> tuple[list[Image], list[Mask], np.ndarray | None]:
        """:meth:`swap`, and for a re-centring model (:attr:`recentres`) with ``shifts`` (N x latent_size, added to
        each face's latent code; None: zeros) also each face's own code (N x latent_size, before the shift); the
        codes are None for other models, which ignore ``shifts``."""
        if not 0.0 <= morph <= 1.0:  # also rejects NaN
            raise ValueError(f"morph={morph!r}, expected a value in 0..1")
        if len(crops) == 0:
            return [], [], None
        if shifts is not None and self.latent_size and np.shape(shifts) != (len(crops), self.latent_size):
            raise ValueError(f"shifts has shape {np.shape(shifts)}, expected ({len(crops)}, {self.latent_size})")
        outputs = self._run(self._to_tensor(crops), float(morph), shifts)
        codes = outputs.pop() if self.latent_size else None
        out_face, out_mask, *source_mask = outputs
        n, s = len(crops), self.info.size
        if self.kind == "swapcam":
            faces_f = out_face.transpose(0, 2, 3, 1)[..., ::-1]  # N,S,S,3 BGR
            masks_f = out_mask[:, 0]
        else:
            faces_f = out_face
            if source_mask[0].shape != out_mask.shape:
                raise ContractError(
                    f"{self.path}: {contract.DFM_OUT_MASK} has shape {source_mask[0].shape}, "
                    f"{contract.DFM_OUT_FACE_MASK} {out_mask.shape}"
                )
            # each clipped first: two out-of-range values of the same sign must not multiply into range
            masks_f = np.clip(out_mask[..., 0], 0.0, 1.0) * np.clip(source_mask[0][..., 0], 0.0, 1.0)
        if faces_f.shape != (n, s, s, 3) or masks_f.shape != (n, s, s):
            raise ContractError(
                f"{self.path}: outputs have shapes {out_face.shape} and {out_mask.shape} for {n} crops of {s}x{s}"
            )
        faces_u8 = np.clip(faces_f * 255.0 + 0.5, 0, 255).astype(np.uint8)
        masks = np.clip(masks_f, 0.0, 1.0).astype(np.float32, copy=False)
        return [np.ascontiguousarray(f) for f in faces_u8], [np.ascontiguousarray(m) for m in masks], codes

    def describe(self) -> str:
        i = self.info
        extras = ", identity re-centring" if self.recentres else ", morph input" if self.has_morph else ""
        return (
            f"{self.path.name}: {i.format} {i.size}px coverage {i.coverage:g}, preset {i.preset}, "
            f"{i.identities[0]} -> {i.identities[1]}{extras}, on {_SHORT.get(self.provider, self.provider)}"
        )
