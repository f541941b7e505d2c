"""Helpers the test modules share (no tests here): CLI runner, waiting, containers, workers."""
