"""The bot's handlers: subscribers' (public), admins' (admin) and what they share (common); bot.commands wires them."""
