from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Stage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_UNSPECIFIED: _ClassVar[Stage]
    STAGE_MASKER: _ClassVar[Stage]
    STAGE_ERASER: _ClassVar[Stage]
    STAGE_UPSCALER: _ClassVar[Stage]
    STAGE_FLOW: _ClassVar[Stage]

class Mode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODE_UNSPECIFIED: _ClassVar[Mode]
    MODE_REMOVE: _ClassVar[Mode]
    MODE_MATTE_ONLY: _ClassVar[Mode]

class Preset(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRESET_UNSPECIFIED: _ClassVar[Preset]
    PRESET_DRAFT: _ClassVar[Preset]
    PRESET_BALANCED: _ClassVar[Preset]
    PRESET_QUALITY: _ClassVar[Preset]

class MatteMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MATTE_MODE_UNSPECIFIED: _ClassVar[MatteMode]
    MATTE_MODE_ALPHA: _ClassVar[MatteMode]
    MATTE_MODE_OBJECT: _ClassVar[MatteMode]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
    JOB_STATE_INTERRUPTED: _ClassVar[JobState]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_SNAPSHOT: _ClassVar[EventType]
    EVENT_TYPE_STATE: _ClassVar[EventType]
    EVENT_TYPE_STAGE: _ClassVar[EventType]
    EVENT_TYPE_PROGRESS: _ClassVar[EventType]
    EVENT_TYPE_WARNING: _ClassVar[EventType]
STAGE_UNSPECIFIED: Stage
STAGE_MASKER: Stage
STAGE_ERASER: Stage
STAGE_UPSCALER: Stage
STAGE_FLOW: Stage
MODE_UNSPECIFIED: Mode
MODE_REMOVE: Mode
MODE_MATTE_ONLY: Mode
PRESET_UNSPECIFIED: Preset
PRESET_DRAFT: Preset
PRESET_BALANCED: Preset
PRESET_QUALITY: Preset
MATTE_MODE_UNSPECIFIED: MatteMode
MATTE_MODE_ALPHA: MatteMode
MATTE_MODE_OBJECT: MatteMode
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_STATE_INTERRUPTED: JobState
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_SNAPSHOT: EventType
EVENT_TYPE_STATE: EventType
EVENT_TYPE_STAGE: EventType
EVENT_TYPE_PROGRESS: EventType
EVENT_TYPE_WARNING: EventType

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BackendInfo(_message.Message):
    __slots__ = ("stage", "name", "available", "reason", "learned", "is_default", "device", "precision")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LEARNED_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    stage: Stage
    name: str
    available: bool
    reason: str
    learned: bool
    is_default: bool
    device: str
    precision: str
    def __init__(self, stage: _Optional[_Union[Stage, str]] = ..., name: _Optional[str] = ..., available: _Optional[bool] = ..., reason: _Optional[str] = ..., learned: _Optional[bool] = ..., is_default: _Optional[bool] = ..., device: _Optional[str] = ..., precision: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("id", "stage", "present", "path", "reason", "license")
    ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    id: str
    stage: Stage
    present: bool
    path: str
    reason: str
    license: str
    def __init__(self, id: _Optional[str] = ..., stage: _Optional[_Union[Stage, str]] = ..., present: _Optional[bool] = ..., path: _Optional[str] = ..., reason: _Optional[str] = ..., license: _Optional[str] = ...) -> None: ...

class Info(_message.Message):
    __slots__ = ("version", "api_version", "device", "backends", "models", "state_dir", "pid", "queue_length", "queue_capacity")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    STATE_DIR_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    QUEUE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    version: str
    api_version: str
    device: str
    backends: _containers.RepeatedCompositeFieldContainer[BackendInfo]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    state_dir: str
    pid: int
    queue_length: int
    queue_capacity: int
    def __init__(self, version: _Optional[str] = ..., api_version: _Optional[str] = ..., device: _Optional[str] = ..., backends: _Optional[_Iterable[_Union[BackendInfo, _Mapping]]] = ..., models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., state_dir: _Optional[str] = ..., pid: _Optional[int] = ..., queue_length: _Optional[int] = ..., queue_capacity: _Optional[int] = ...) -> None: ...

class MediaRange(_message.Message):
    __slots__ = ("path", "start_frame", "end_frame")
    PATH_FIELD_NUMBER: _ClassVar[int]
    START_FRAME_FIELD_NUMBER: _ClassVar[int]
    END_FRAME_FIELD_NUMBER: _ClassVar[int]
    path: str
    start_frame: int
    end_frame: int
    def __init__(self, path: _Optional[str] = ..., start_frame: _Optional[int] = ..., end_frame: _Optional[int] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y", "positive")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    positive: bool
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., positive: _Optional[bool] = ...) -> None: ...

class Box(_message.Message):
    __slots__ = ("x0", "y0", "x1", "y1")
    X0_FIELD_NUMBER: _ClassVar[int]
    Y0_FIELD_NUMBER: _ClassVar[int]
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    x0: float
    y0: float
    x1: float
    y1: float
    def __init__(self, x0: _Optional[float] = ..., y0: _Optional[float] = ..., x1: _Optional[float] = ..., y1: _Optional[float] = ...) -> None: ...

class FramePrompt(_message.Message):
    __slots__ = ("frame", "points", "box")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    frame: int
    points: _containers.RepeatedCompositeFieldContainer[Point]
    box: Box
    def __init__(self, frame: _Optional[int] = ..., points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., box: _Optional[_Union[Box, _Mapping]] = ...) -> None: ...

class MaskSpec(_message.Message):
    __slots__ = ("text", "mask_path", "frame_prompts", "approximate")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MASK_PATH_FIELD_NUMBER: _ClassVar[int]
    FRAME_PROMPTS_FIELD_NUMBER: _ClassVar[int]
    APPROXIMATE_FIELD_NUMBER: _ClassVar[int]
    text: str
    mask_path: str
    frame_prompts: _containers.RepeatedCompositeFieldContainer[FramePrompt]
    approximate: bool
    def __init__(self, text: _Optional[str] = ..., mask_path: _Optional[str] = ..., frame_prompts: _Optional[_Iterable[_Union[FramePrompt, _Mapping]]] = ..., approximate: _Optional[bool] = ...) -> None: ...

class Options(_message.Message):
    __slots__ = ("preset", "masker", "eraser", "upscaler", "flow", "working_height", "mask_dilation", "feather", "neighbor_stride", "step", "subvideo_length", "mask_threshold", "clip_window", "reuse_flow", "seed", "include_effects", "device")
    PRESET_FIELD_NUMBER: _ClassVar[int]
    MASKER_FIELD_NUMBER: _ClassVar[int]
    ERASER_FIELD_NUMBER: _ClassVar[int]
    UPSCALER_FIELD_NUMBER: _ClassVar[int]
    FLOW_FIELD_NUMBER: _ClassVar[int]
    WORKING_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MASK_DILATION_FIELD_NUMBER: _ClassVar[int]
    FEATHER_FIELD_NUMBER: _ClassVar[int]
    NEIGHBOR_STRIDE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    SUBVIDEO_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MASK_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CLIP_WINDOW_FIELD_NUMBER: _ClassVar[int]
    REUSE_FLOW_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_EFFECTS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    preset: Preset
    masker: str
    eraser: str
    upscaler: str
    flow: str
    working_height: int
    mask_dilation: int
    feather: int
    neighbor_stride: int
    step: int
    subvideo_length: int
    mask_threshold: float
    clip_window: int
    reuse_flow: bool
    seed: int
    include_effects: bool
    device: str
    def __init__(self, preset: _Optional[_Union[Preset, str]] = ..., masker: _Optional[str] = ..., eraser: _Optional[str] = ..., upscaler: _Optional[str] = ..., flow: _Optional[str] = ..., working_height: _Optional[int] = ..., mask_dilation: _Optional[int] = ..., feather: _Optional[int] = ..., neighbor_stride: _Optional[int] = ..., step: _Optional[int] = ..., subvideo_length: _Optional[int] = ..., mask_threshold: _Optional[float] = ..., clip_window: _Optional[int] = ..., reuse_flow: _Optional[bool] = ..., seed: _Optional[int] = ..., include_effects: _Optional[bool] = ..., device: _Optional[str] = ...) -> None: ...

class OutputSpec(_message.Message):
    __slots__ = ("path", "matte_path", "overwrite", "patch_layer", "matte_mode")
    PATH_FIELD_NUMBER: _ClassVar[int]
    MATTE_PATH_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    PATCH_LAYER_FIELD_NUMBER: _ClassVar[int]
    MATTE_MODE_FIELD_NUMBER: _ClassVar[int]
    path: str
    matte_path: str
    overwrite: bool
    patch_layer: bool
    matte_mode: MatteMode
    def __init__(self, path: _Optional[str] = ..., matte_path: _Optional[str] = ..., overwrite: _Optional[bool] = ..., patch_layer: _Optional[bool] = ..., matte_mode: _Optional[_Union[MatteMode, str]] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("source", "mask", "mode", "options", "output", "client")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    source: MediaRange
    mask: MaskSpec
    mode: Mode
    options: Options
    output: OutputSpec
    client: str
    def __init__(self, source: _Optional[_Union[MediaRange, _Mapping]] = ..., mask: _Optional[_Union[MaskSpec, _Mapping]] = ..., mode: _Optional[_Union[Mode, str]] = ..., options: _Optional[_Union[Options, _Mapping]] = ..., output: _Optional[_Union[OutputSpec, _Mapping]] = ..., client: _Optional[str] = ...) -> None: ...

class StageBackend(_message.Message):
    __slots__ = ("stage", "backend", "note")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    stage: Stage
    backend: str
    note: str
    def __init__(self, stage: _Optional[_Union[Stage, str]] = ..., backend: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class JobResult(_message.Message):
    __slots__ = ("output_path", "matte_path", "frame_count", "backends", "chosen_object", "chosen_score", "seconds", "output_files", "ignored_words")
    OUTPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    MATTE_PATH_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    BACKENDS_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_OBJECT_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_SCORE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    IGNORED_WORDS_FIELD_NUMBER: _ClassVar[int]
    output_path: str
    matte_path: str
    frame_count: int
    backends: _containers.RepeatedCompositeFieldContainer[StageBackend]
    chosen_object: str
    chosen_score: float
    seconds: float
    output_files: _containers.RepeatedScalarFieldContainer[str]
    ignored_words: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, output_path: _Optional[str] = ..., matte_path: _Optional[str] = ..., frame_count: _Optional[int] = ..., backends: _Optional[_Iterable[_Union[StageBackend, _Mapping]]] = ..., chosen_object: _Optional[str] = ..., chosen_score: _Optional[float] = ..., seconds: _Optional[float] = ..., output_files: _Optional[_Iterable[str]] = ..., ignored_words: _Optional[_Iterable[str]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "state", "request", "stage", "frames_done", "frames_total", "eta_seconds", "error", "error_code", "warnings", "result", "created_at", "updated_at", "kind")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DONE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: JobState
    request: SubmitRequest
    stage: str
    frames_done: int
    frames_total: int
    eta_seconds: float
    error: str
    error_code: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    result: JobResult
    created_at: float
    updated_at: float
    kind: str
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., request: _Optional[_Union[SubmitRequest, _Mapping]] = ..., stage: _Optional[str] = ..., frames_done: _Optional[int] = ..., frames_total: _Optional[int] = ..., eta_seconds: _Optional[float] = ..., error: _Optional[str] = ..., error_code: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ..., result: _Optional[_Union[JobResult, _Mapping]] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., kind: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "seq", "type", "job", "message")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    seq: int
    type: EventType
    job: Job
    message: str
    def __init__(self, job_id: _Optional[str] = ..., seq: _Optional[int] = ..., type: _Optional[_Union[EventType, str]] = ..., job: _Optional[_Union[Job, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ResumeRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("limit", "states", "page_token")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    limit: int
    states: _containers.RepeatedScalarFieldContainer[JobState]
    page_token: str
    def __init__(self, limit: _Optional[int] = ..., states: _Optional[_Iterable[_Union[JobState, str]]] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PreviewMaskRequest(_message.Message):
    __slots__ = ("path", "frame", "mask", "options")
    PATH_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    path: str
    frame: int
    mask: MaskSpec
    options: Options
    def __init__(self, path: _Optional[str] = ..., frame: _Optional[int] = ..., mask: _Optional[_Union[MaskSpec, _Mapping]] = ..., options: _Optional[_Union[Options, _Mapping]] = ...) -> None: ...

class PreviewMaskResponse(_message.Message):
    __slots__ = ("mask_png", "width", "height", "backend", "chosen_object", "score", "warnings", "mask_pixels")
    MASK_PNG_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_OBJECT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    MASK_PIXELS_FIELD_NUMBER: _ClassVar[int]
    mask_png: bytes
    width: int
    height: int
    backend: str
    chosen_object: str
    score: float
    warnings: _containers.RepeatedScalarFieldContainer[str]
    mask_pixels: int
    def __init__(self, mask_png: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., backend: _Optional[str] = ..., chosen_object: _Optional[str] = ..., score: _Optional[float] = ..., warnings: _Optional[_Iterable[str]] = ..., mask_pixels: _Optional[int] = ...) -> None: ...

class ProcessTimelineRequest(_message.Message):
    __slots__ = ("timeline_path", "output_path", "media_dir", "options", "overwrite", "client")
    TIMELINE_PATH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    MEDIA_DIR_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    timeline_path: str
    output_path: str
    media_dir: str
    options: Options
    overwrite: bool
    client: str
    def __init__(self, timeline_path: _Optional[str] = ..., output_path: _Optional[str] = ..., media_dir: _Optional[str] = ..., options: _Optional[_Union[Options, _Mapping]] = ..., overwrite: _Optional[bool] = ..., client: _Optional[str] = ...) -> None: ...
