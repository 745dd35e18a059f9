"""Characters from files: the folder loader, Character Card codecs (``cards``) and the
import/export operations behind ``personae characters``."""
