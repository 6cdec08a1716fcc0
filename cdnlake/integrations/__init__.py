"""The outside services cdnlake talks to: AWS (S3, Glue, CloudWatch) and Slack's chat commands."""
