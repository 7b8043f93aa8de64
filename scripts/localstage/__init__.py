"""The Docker-free local stage: template reader, AWS emulator, Vanta stand-in, runtime, fronts."""

__all__: list[str] = []
