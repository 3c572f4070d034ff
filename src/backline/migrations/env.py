"""Alembic environment: runs on the connection `backline.migrate` hands over.

Migrations always run through `backline.migrate` (the CLI, `serve`, the tests), which opens
the async engine from the settings and passes a synchronous connection facade in
`config.attributes["connection"]`; there is no separate alembic.ini to keep in step.
"""

from alembic import context

from backline.models import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
