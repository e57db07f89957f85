"""The full-text index behind keyword search, kept by the database itself.

PostgreSQL: a generated `tsvector` column (`search_vector`) with a GIN index on
chunks and on items. SQLite: FTS5 tables fed by triggers. Neither is a model
field; library/search.py holds the statements and queries them.
"""

from django.db import migrations


def install(apps, schema_editor):
    from library.search import install_keyword_index

    install_keyword_index(schema_editor.connection, force=True)


def uninstall(apps, schema_editor):
    from library.search import uninstall_keyword_index

    uninstall_keyword_index(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("library", "0001_initial")]

    operations = [migrations.RunPython(install, uninstall)]
