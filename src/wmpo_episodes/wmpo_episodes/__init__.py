"""Episodes: the episode manager, the bag recorder, the bag layout, reading and crash recovery."""
