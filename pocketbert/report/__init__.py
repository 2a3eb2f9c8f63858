"""The run report: one document model rendered as Markdown (for pull requests) and self-contained HTML."""
