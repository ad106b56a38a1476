"""`python -m kb`: the same command as `kb`."""

from kb.cli import app

if __name__ == "__main__":
    app(prog_name="kb")
