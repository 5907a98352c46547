"""stemhub for Slack."""
