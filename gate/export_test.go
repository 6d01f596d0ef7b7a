package gate

// GroupDirName and UserDirName are the names of the directory shards of a
// group and of a user, for tests that find or kill the node that runs one.
func GroupDirName(group string) string { return dirName(groupShard(group)) }
func UserDirName(user string) string   { return dirName(userShard(user)) }
