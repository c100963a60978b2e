"""The fetcher: on JobDue, fetches a random food photo from Unsplash; the job resolves or fails."""
