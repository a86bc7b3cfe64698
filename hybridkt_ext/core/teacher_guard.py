"""``TeacherGuard``: the teacher is frozen before training, unchanged after it, and the one a
resumed run was trained with.

The teacher's weights are the knowledge being transferred, so every framework checks the same
three things, with the same error types and one fingerprint (``teacher_fingerprint``):

* before training: it is frozen (``TeacherNotFrozenError``);
* after training: no tensor changed (``TeacherNotFrozenError`` naming the tensors that did);
* when a checkpoint is loaded: its teacher is the one built from the config's teacher file. The
  policy is the same everywhere: the teacher always comes from its own file. Resuming (the same
  run going on: optimiser, schedule, adapters fitted to that teacher) with another teacher is
  refused (``TeacherMismatchError``); loading weights for a fresh start or for evaluation only
  warns, since another teacher may be intended and evaluation uses the student path only.

The frameworks differ only in the words of the fix (which config key names the teacher file,
how a fresh start is written), which they pass in ``TeacherSource``.
"""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .errors import TeacherMismatchError
from .freezing import TeacherNotFrozenError, assert_teacher_frozen
from .teacher_fingerprint import teacher_fingerprint, tensor_digests


@dataclass(frozen=True)
class TeacherSource:
    """Where the framework's config names the teacher, for messages.

    Attributes:
        key: the config key of the teacher file (``model.backbone.teacher.checkpoint``).
        file: the file it names now (None: random init or not said).
        fresh_start: how a new run from a checkpoint's weights is written in that framework
            (``train with load_from=<checkpoint> instead of --resume``).
    """

    key: str
    file: str | None
    fresh_start: str


class TeacherGuard:
    """Watches one frozen teacher over a run.

    Args:
        teacher: the frozen teacher (its stages' module or the teacher network).
        where: who checks, as messages start (``HybridKTHook``).
    """

    def __init__(self, teacher: nn.Module, where: str = "hybridkt") -> None:
        self.teacher = teacher
        self.where = where
        self._before: dict[str, str] = {}

    def fingerprint(self) -> str:
        """The teacher's SHA-256 fingerprint now (equal iff its tensors are bit-equal)."""
        return teacher_fingerprint(self.teacher)

    def before_training(self) -> None:
        """Checks the teacher is frozen and remembers every tensor's digest.

        Raises:
            TeacherNotFrozenError: a parameter requires grad or a module is in training mode.
        """
        self._check_frozen("before training")
        self._before = tensor_digests(self.teacher.state_dict())

    def after_training(self) -> None:
        """Checks the teacher is still frozen and that no tensor changed since
        ``before_training`` (nothing to compare when it was not called).

        Raises:
            TeacherNotFrozenError: naming the first tensors that changed.
        """
        if not self._before:
            return
        self._check_frozen("after training")
        after = tensor_digests(self.teacher.state_dict())
        changed = [k for k, v in after.items() if v != self._before.get(k, v)]
        if changed:
            raise TeacherNotFrozenError(
                f"{self.where}: the teacher changed during training: {changed[:5]}"
                f"{' ...' if len(changed) > 5 else ''}. Something trained or re-initialised it "
                "(an optimizer given all parameters of a custom module, a norm layer put back "
                "in train mode); its weights are the transferred knowledge.")

    def check_loaded(self, trained_with: str, source: TeacherSource, resuming: bool,
                     trained_from: str | None = None, random_init: bool = False) -> str | None:
        """Compares the teacher built from the config with the one a checkpoint was trained with.

        Args:
            trained_with: the fingerprint of the checkpoint's teacher.
            source: the config's teacher file and how to start afresh, for messages.
            resuming: the checkpoint continues this run (not a fresh start or evaluation).
            trained_from: the file the checkpoint's teacher was read from, if recorded.
            random_init: the checkpoint's teacher had no file (drawn anew at every build).

        Returns:
            None when they are the same teacher; otherwise, when only loading, the warning to
            log (the caller then keeps the teacher built from the config).

        Raises:
            TeacherMismatchError: resuming with another teacher.
        """
        built = self.fingerprint()
        if built == trained_with:
            return None
        message = (
            f"{self.where}: the teacher built from {source.file!r} (sha256 {built[:16]}) is not "
            f"the teacher this checkpoint was trained with (sha256 {trained_with[:16]}"
            f"{f', from {trained_from!r}' if trained_from else ''}). The student and the "
            "adapters were fitted to that teacher's features.")
        if resuming and random_init:
            raise TeacherMismatchError(
                f"{self.where}: this run's teacher had no file (allow_random_init): it is drawn "
                "anew at every build, so the run cannot be resumed with the teacher it was "
                f"trained with. Train with a teacher file ({source.key}) to be able to resume, "
                "or start a new run.")
        if resuming:
            raise TeacherMismatchError(
                f"{message} Restore the original teacher file at {source.key} to resume; to "
                f"start from these weights with another teacher on purpose, {source.fresh_start} "
                "(fresh optimiser and schedule).")
        return f"{message} Continuing with the teacher built from the config."

    def _check_frozen(self, when: str) -> None:
        try:
            assert_teacher_frozen(self.teacher)
        except TeacherNotFrozenError as err:
            raise TeacherNotFrozenError(f"{self.where}, {when}: {err}") from err
