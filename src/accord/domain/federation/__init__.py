"""The federation: partners, institutions, sites, GPU pools, units, agreements and exchange
rates as records (:mod:`.model`), and a federation built from a parsed document with every
problem reported (:mod:`.schema`)."""
