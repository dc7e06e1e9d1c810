"""filemem test suite."""
