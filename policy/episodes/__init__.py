"""Episodes: recording and reading robot episodes in the LeRobot v3 dataset layout (torch-free).

DatasetWriter records (non-blocking, crash-safe, resumable), DatasetReader reads episodes back,
TrainingSamples serves (frames, future frames, action chunk, state) samples for training.
"""
from policy.episodes.reader import DatasetReader, EpisodeInfo, EpisodeTable, ImaginedClip
from policy.episodes.samples import SampleConfig, TrainingSamples
from policy.episodes.spec import DatasetSpec, DatasetSpecError
from policy.episodes.writer import DatasetWriteError, DatasetWriter, WriterConfig, WriterStatus

__all__ = ["DatasetReader", "DatasetSpec", "DatasetSpecError", "DatasetWriteError", "DatasetWriter",
           "EpisodeInfo", "EpisodeTable", "ImaginedClip", "SampleConfig", "TrainingSamples", "WriterConfig",
           "WriterStatus"]
