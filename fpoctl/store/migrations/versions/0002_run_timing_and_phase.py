"""run timing and phase: active_s, first_started, phase on runs

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 04:20:00

`active_s` holds the seconds a run spent running in its earlier, ended attempts and
`first_started` when it first ran, so elapsed time and ETA survive stop / resume; `phase` says
what the run does when it is not iterating. Existing rows keep their numbers: a run that ended
counts its one known attempt (started .. finished), and it first started when it last started.
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('active_s', sa.Float(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('first_started', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('phase', sa.Text(), nullable=True))
    op.execute("UPDATE runs SET first_started = started")
    op.execute("UPDATE runs SET active_s = finished - started WHERE status IN "
               "('finished', 'failed', 'stopped') AND started IS NOT NULL AND finished IS NOT NULL "
               "AND finished >= started")


def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('phase')
        batch_op.drop_column('first_started')
        batch_op.drop_column('active_s')
