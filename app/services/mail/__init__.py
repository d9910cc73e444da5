"""Transactional e-mail: an outbox written in the transaction of the change that causes each
mail (outbox.py), the mails themselves (messages.py and the modules it registers), and the
sender that renders and delivers them over SMTP with retries (sender.py)."""
