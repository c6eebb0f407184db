"""Rendering: an Alert as a Slack Block Kit message and as an e-mail, each escaped for its
medium and bounded by its limits, with a minimal rendering that cannot fail.

    slack_message.py  Block Kit: the top-level message, thread replies, a storm's header
    email_message.py  the text and HTML parts of an e-mail
    text.py           what both say, unescaped: titles, the recovery sentence, truncation
    lineage.py        a failure's blast radius, a recovery's late DAGs, for both media
"""
