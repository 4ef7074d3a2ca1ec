//! Publishes alerts to Slack, through an incoming webhook or the Web API with a bot token.
//!
//! In bot-token mode a resolve updates the original message, found through a `MessageRefStore`.
