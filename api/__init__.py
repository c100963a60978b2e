"""The HTTP face of jobline: REST, GraphQL (queries, mutations, subscriptions) and the page."""
