"""The tags that say what an MLflow run is to gan-search (one definition for the writer,
the readers and the UI's saved view)."""

SEARCH_TAG = "gan_search.search"  # the search's name, on the parent and every child
TRIAL_TAG = "gan_search.trial_id"  # a child's Tune trial id
STATUS_TAG = "gan_search.status"  # a child's vocabulary.Status
ROLE_TAG = "gan_search.role"  # vocabulary.Role: parent, search, baseline, confirm, member
MESSAGE_TAG = "gan_search.message"  # why a trial failed or diverged
CONFIRM_OF_TAG = "gan_search.confirm_of"  # a confirmation run: the search trial it retrains
NODE_TAG = "gan_search.node_id"  # the Ray node a trial last reported from
LINEAGE_TAG = "gan_search.lineage"  # a PBT member's copies: [{from, step, values}] as JSON
MODEL_TAG = "gan_search.model"  # the parent's: the delivered generator's models:/ URI
