"""The Docker-free local stage: template reader, AWS emulator, Vanta stand-in, Lambda runtime, API front."""

__all__: list[str] = []
