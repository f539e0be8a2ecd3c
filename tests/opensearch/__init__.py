"""Tests against a real OpenSearch node (localstack/opensearch.sh)."""
