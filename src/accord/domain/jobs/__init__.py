"""Jobs: the spec a researcher submits and its checks against the federation (:mod:`.spec`),
the lifecycle as a pure state machine (:mod:`.model`), and the plain-data encoding of jobs,
events and usage records that the store, the API and the CLI share (:mod:`.codec`)."""
