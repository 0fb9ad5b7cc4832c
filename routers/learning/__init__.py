"""Learning from the server's own traffic: the label store, the judge protocol, labels as training
targets, and the promotion gate. Plain Python (no Ray, no HTTP): ``deployments.learning`` runs
them inside the server, ``cli`` runs them as commands."""
