from ingestor.cli import app

app(prog_name="python -m ingestor")
